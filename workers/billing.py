"""Billing jobs: provision, link and sync Stripe subscriptions; invoice prorations; sweep.

Thin functions that load by id, call the billing services and commit in short
transactions; Stripe is called with no transaction open. One agency is synced
at a time (a Redis lock per agency, since Stripe answers 429 `lock_timeout` to
concurrent writes on one subscription), and each job converges to the latest
purchased quantities, so a burst of seat changes costs a handful of calls.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from rq import get_current_job
from sqlalchemy.orm import Session

from seatsvc.billing import sync
from seatsvc.billing.gateway import (
    PaymentDeclined,
    StripeGateway,
    StripePermanent,
    StripeTransient,
    SubscriptionSnapshot,
)
from seatsvc.billing.limits import Debounce, invoice_allowed_now, next_update_allowed_at
from seatsvc.billing.locks import agency_lock
from seatsvc.enqueue import enqueue_invoice, enqueue_sync, enqueue_sync_at
from seatsvc.models import utcnow
from seatsvc.runtime import Runtime
from workers import context
from workers.context import gateway

log = logging.getLogger(__name__)

MAX_ROUNDS = 25
# How much older than the agency row its Stripe customer may look (clocks differ).
CUSTOMER_LOOKBACK = timedelta(hours=1)


# ---- jobs ------------------------------------------------------------------------


def sync_agency(agency_id: str) -> str:
    """Make Stripe hold the agency's purchased seats. Safe to run any number of times."""
    rt = context.runtime()
    with _locked(rt, agency_id):
        try:
            return _converge(rt, gateway(rt), agency_id)
        except (StripePermanent, StripeTransient) as error:
            permanent, reason = isinstance(error, StripePermanent), str(error)
            rt.transaction(lambda s: sync.record_failure(s, agency_id, reason, permanent=permanent))
            if permanent:
                _no_more_retries()
            raise


def invoice_agency(agency_id: str) -> str:
    """One invoice of the agency's pending prorations, paid now. A decline is not retried."""
    rt = context.runtime()
    with _locked(rt, agency_id):
        plan = rt.transaction(lambda s: sync.plan_sync(s, agency_id))
        if plan is None or not plan.customer_id or not plan.subscription_id:
            return "no subscription yet"
        day = utcnow().date().isoformat()
        count = rt.transaction(lambda s: sync.invoices_on(s, agency_id, day))
        tag = f"{agency_id}:invoice:{day}:{count + 1}"
        token = uuid.uuid4().hex[:16]  # this try's own keys (see invoice_pending_items)
        try:
            invoice = gateway(rt).invoice_pending_items(
                plan.customer_id, plan.subscription_id, tag, token
            )
        except PaymentDeclined as error:
            reason = str(error)
            rt.transaction(
                lambda s: _declined(s, agency_id, reason, f"invoice:{day}:{count + 1}", day)
            )
            return "payment declined: admins notified"
        except StripePermanent:
            _no_more_retries()
            raise
        paid = invoice is None or invoice.paid
        rt.transaction(lambda s: sync.record_invoice(s, agency_id, day, paid=paid))
        return "nothing to invoice" if invoice is None else f"invoice {invoice.id} {invoice.status}"


def invoice_due() -> int:
    """Cron, once a day: one invoice of the day's prorations per agency that has some."""
    rt = context.runtime()
    agency_ids = rt.transaction(sync.agencies_needing_invoice)
    for agency_id in agency_ids:
        enqueue_invoice(rt.redis, agency_id)
    return len(agency_ids)


def requeue_pending_syncs(older_than_seconds: int = 30) -> int:
    """Cron: re-enqueue every agency whose change has not reached Stripe (Redis was down...)."""
    rt = context.runtime()
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    agency_ids = rt.transaction(lambda s: sync.pending_agency_ids(s, cutoff))
    for agency_id in agency_ids:
        enqueue_sync(rt.redis, agency_id, fresh=False)  # a retry's backoff stays
    return len(agency_ids)


# ---- the convergence loop ------------------------------------------------------------


def _converge(rt: Runtime, stripe_gateway: StripeGateway, agency_id: str) -> str:
    debounce = Debounce(
        quiet=timedelta(milliseconds=rt.config.billing_quiet_ms),
        max_wait=timedelta(milliseconds=rt.config.billing_max_wait_ms),
    )
    for _round in range(MAX_ROUNDS):
        plan = rt.transaction(lambda s: sync.plan_sync(s, agency_id))
        if plan is None:
            return "unknown agency"
        match plan.action:
            case sync.SyncAction.NONE:
                if not plan.done:  # confirmed meanwhile by a fresh look (a webhook, a retrieve)
                    _confirm(rt, plan)
                return "in sync"
            case sync.SyncAction.PROVISION:
                _provision(rt, stripe_gateway, plan)
            case sync.SyncAction.LINK:
                _link(rt, stripe_gateway, plan)
            case sync.SyncAction.SYNC:
                now = utcnow()
                wait = debounce.wait_seconds(plan.last_change_at, plan.first_pending_at or now, now)
                if wait > 0:
                    time.sleep(wait)
                    continue
                allowed_at = next_update_allowed_at(plan.window, now)
                if allowed_at > now:
                    enqueue_sync_at(rt.redis, agency_id, allowed_at)
                    return f"hourly Stripe budget used: next update at {allowed_at.isoformat()}"
                if _sync_quantities(rt, stripe_gateway, plan):
                    return "synced"
    enqueue_sync(rt.redis, agency_id)
    return "changes keep arriving: continuing in a new job"


def _sync_quantities(rt: Runtime, stripe_gateway: StripeGateway, plan: sync.SyncPlan) -> bool:
    assert plan.subscription_id is not None
    subscription_id = plan.subscription_id
    item_ids = rt.transaction(lambda s: sync.item_ids(s, plan.agency_id))
    unknown = [seat for seat, n in plan.purchased.items() if n > 0 and not item_ids.get(seat)]
    if plan.uncertain or unknown:
        # After a 5xx, a lost answer or a replay Stripe may hold anything (our write, or
        # a dashboard change since), and an item added by price twice is refused: learn
        # Stripe's present first; the write below then goes out under a new key.
        current = stripe_gateway.get_subscription(subscription_id)
        if rt.transaction(lambda s: _observed(s, plan, current)):
            _after_sync(rt, plan, current)
            return True
        item_ids = {seat: item.id for seat, item in current.items.items()}
    snapshot = stripe_gateway.set_quantities(
        subscription_id, item_ids, plan.purchased, "create_prorations", plan.intent
    )
    if snapshot.replayed:
        # What Stripe held when the key was first used, not now: record a fresh look,
        # and give the next write a new key.
        reason = f"stripe replayed an earlier answer for {subscription_id}"
        rt.transaction(lambda s: sync.record_uncertain(s, plan.agency_id, reason))
        current = stripe_gateway.get_subscription(subscription_id)
        in_sync = rt.transaction(lambda s: _observed(s, plan, current))
        snapshot = current
    else:
        in_sync = rt.transaction(
            lambda s: sync.record_synced(s, plan, snapshot, utcnow(), sent_update=True)
        )
    _after_sync(rt, plan, snapshot)
    return in_sync


def _confirm(rt: Runtime, plan: sync.SyncPlan) -> None:
    rt.transaction(lambda s: sync.record_confirmed(s, plan))


def _observed(session: Session, plan: sync.SyncPlan, current: SubscriptionSnapshot) -> bool:
    """A fresh retrieve recorded as Stripe's present (no write of ours went out)."""
    return sync.record_synced(session, plan, current, utcnow(), sent_update=False)


def _after_sync(rt: Runtime, plan: sync.SyncPlan, snapshot: SubscriptionSnapshot) -> None:
    """In `immediate` mode, a seat increase is invoiced now while today's budget lasts."""
    grew = any(snapshot.quantity(seat) > (plan.billed.get(seat) or 0) for seat in plan.purchased)
    if grew and rt.config.billing_invoice_mode == "immediate":
        day = utcnow().date().isoformat()
        invoices_today = rt.transaction(lambda s: sync.invoices_on(s, plan.agency_id, day))
        if invoice_allowed_now("immediate", invoices_today):
            enqueue_invoice(rt.redis, plan.agency_id)


def _provision(rt: Runtime, stripe_gateway: StripeGateway, plan: sync.SyncPlan) -> None:
    """A customer and a subscription for the agency, each created at most once in Stripe:
    a try whose answer was lost (or saved as a 500) may have made them, so look first."""
    customer_id = plan.customer_id
    if customer_id is None:
        customer_id = stripe_gateway.find_customer(
            plan.agency_id, plan.created_at - CUSTOMER_LOOKBACK
        ) or stripe_gateway.create_customer(
            plan.agency_id, plan.name, plan.billing_email, plan.intent
        )
        known = customer_id
        rt.transaction(lambda s: sync.record_customer(s, plan.agency_id, known))
    snapshot = stripe_gateway.find_subscription(customer_id, plan.agency_id)
    if snapshot is None:
        # A paid subscription starts empty: its first invoice is then 0 and paid, so it
        # is active at once and the seats follow as an ordinary prorated update. Created
        # with paid seats before the agency has a card, Stripe would leave it `incomplete`
        # and refuse every later quantity change. A trial charges nothing: it starts full.
        opening = plan.purchased if plan.trial_days else dict.fromkeys(plan.purchased, 0)
        snapshot = stripe_gateway.create_subscription(
            customer_id, plan.agency_id, opening, plan.trial_days, plan.intent
        )
        if snapshot.replayed:
            snapshot = stripe_gateway.get_subscription(snapshot.id)
    found = snapshot
    rt.transaction(lambda s: sync.record_subscription(s, plan, found, linked=False))


def _link(rt: Runtime, stripe_gateway: StripeGateway, plan: sync.SyncPlan) -> None:
    assert plan.subscription_id is not None
    snapshot = stripe_gateway.get_subscription(plan.subscription_id)
    rt.transaction(lambda s: sync.record_subscription(s, plan, snapshot, linked=True))


def _declined(session: Session, agency_id: str, reason: str, cause: str, day: str) -> None:
    sync.record_payment_declined(session, agency_id, reason, cause)
    sync.record_invoice(session, agency_id, day, paid=False)


# ---- plumbing ------------------------------------------------------------------------


@contextmanager
def _locked(rt: Runtime, agency_id: str) -> Iterator[None]:
    with agency_lock(rt.redis, agency_id, rt.config.billing_lock_seconds):
        yield


def _no_more_retries() -> None:
    """Retrying a request Stripe refused cannot help: straight to the failed registry."""
    job = get_current_job()
    if job is not None:
        job.retries_left = 0
