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
        key = f"seatsvc:{agency_id}:invoice:{day}:{count + 1}"
        try:
            invoice = gateway(rt).invoice_pending_items(plan.customer_id, plan.subscription_id, key)
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
    item_ids = rt.transaction(lambda s: sync.item_ids(s, plan.agency_id))
    snapshot = stripe_gateway.set_quantities(
        plan.subscription_id,
        item_ids,
        plan.purchased,
        "create_prorations",
        plan.idempotency_key("quantities"),
    )
    in_sync = rt.transaction(
        lambda s: sync.record_synced(s, plan, snapshot, utcnow(), sent_update=True)
    )
    grew = any(snapshot.quantity(seat) > (plan.billed.get(seat) or 0) for seat in plan.purchased)
    if grew and rt.config.billing_invoice_mode == "immediate":
        day = utcnow().date().isoformat()
        invoices_today = rt.transaction(lambda s: sync.invoices_on(s, plan.agency_id, day))
        if invoice_allowed_now("immediate", invoices_today):
            enqueue_invoice(rt.redis, plan.agency_id)
    return in_sync


def _provision(rt: Runtime, stripe_gateway: StripeGateway, plan: sync.SyncPlan) -> None:
    customer_id = plan.customer_id
    if customer_id is None:
        customer_id = stripe_gateway.create_customer(
            plan.agency_id, plan.name, plan.billing_email, f"seatsvc:{plan.agency_id}:customer"
        )
        created = customer_id
        rt.transaction(lambda s: sync.record_customer(s, plan.agency_id, created))
    # A paid subscription starts empty: its first invoice is then 0 and paid, so it is
    # active at once and the seats follow as an ordinary prorated update. Created with
    # paid seats before the agency has a card, Stripe would leave it `incomplete` and
    # refuse every later quantity change. A trial charges nothing, so it starts full.
    opening = plan.purchased if plan.trial_days else dict.fromkeys(plan.purchased, 0)
    snapshot: SubscriptionSnapshot = stripe_gateway.create_subscription(
        customer_id,
        plan.agency_id,
        opening,
        plan.trial_days,
        f"seatsvc:{plan.agency_id}:subscription",
    )
    rt.transaction(lambda s: sync.record_subscription(s, plan, snapshot, linked=False))


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
