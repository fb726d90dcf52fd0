"""Reconciliation: the ledger and Stripe agree even when webhooks are lost.

The sweep (rq cron, and `flask stripe reconcile --all`) first recovers missed
events (`events.list` since the newest one stored), then lists every
subscription 100 at a time and compares each agency with it in memory: one
Stripe call per hundred agencies. Only an agency that disagrees costs more: it
is healed like a webhook would heal it (its billing lock, a fresh retrieve,
the `webhooks.drift` rules), and agencies whose local change is pending get a
billing sync. What it did is logged and returned as the job's result.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import redis

from seatsvc.billing.gateway import StripeGateway, SubscriptionSnapshot
from seatsvc.billing.sync import status_from_stripe
from seatsvc.models import utcnow
from seatsvc.runtime import Runtime
from seatsvc.types import BillingStatus, StripeEventStatus
from webhooks import handlers, reads, store
from workers import billing, context, stripe_events

log = logging.getLogger(__name__)

RECONCILE_SECONDS = 3600  # the cron's interval (workers/scheduler.py)
JOB_TIMEOUT = 3600  # 10,000 agencies take minutes, not hours
# Events are recovered from a little before the newest stored one: Stripe's `created`
# has one-second resolution, and deliveries arrive out of order.
EVENT_OVERLAP = timedelta(minutes=10)
# With nothing stored yet, look back as far as Stripe retries a delivery.
EVENT_LOOKBACK = timedelta(days=3)


@dataclass
class Report:
    """What one reconcile run saw and did (the job's result)."""

    agencies: int = 0
    in_agreement: int = 0
    healed: int = 0
    adopted: dict[str, dict[str, int]] = field(default_factory=dict)
    syncs_enqueued: int = 0
    missing_in_stripe: list[str] = field(default_factory=list)
    events_recovered: int = 0
    stripe_calls: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ---- jobs ------------------------------------------------------------------------------


def reconcile_all() -> dict[str, Any]:
    """Cron: recover missed events, compare every agency with Stripe, heal."""
    rt = context.runtime()
    report = sweep(rt, billing.gateway(rt))
    return report.as_dict()


def reconcile_one(agency_id: str) -> dict[str, Any]:
    """One agency now (`POST /v1/agencies/{id}/reconcile`): a fresh retrieve, then heal."""
    rt = context.runtime()
    report = sweep(rt, billing.gateway(rt), agency_ids=[agency_id], recover_events=False)
    return report.as_dict()


def enqueue_reconcile(connection: redis.Redis, agency_id: str) -> bool:
    return billing.enqueue_unique(
        billing.billing_queue(connection),
        reconcile_one,
        f"stripe-reconcile-{billing.rq_safe(agency_id)}",
        agency_id,
    )


# ---- the sweep ---------------------------------------------------------------------------


def sweep(
    rt: Runtime,
    gateway: StripeGateway,
    agency_ids: Iterable[str] | None = None,
    recover_events: bool = True,
) -> Report:
    started_at, clock = utcnow(), time.monotonic()
    report = Report()
    counter = reads.CallCounter()
    wanted = list(agency_ids) if agency_ids is not None else None
    if recover_events:
        report.events_recovered = recover_missed_events(rt, gateway, counter)
    local = rt.transaction(lambda s: store.agencies_for_reconcile(s, wanted))
    report.agencies = len(local)
    if wanted is None:
        remote = {snap.id: snap for snap in reads.all_subscriptions(gateway, counter)}
    else:
        remote = {}  # one agency: its own subscription, fetched under its lock below
    for agency in local:
        if agency.subscription_id is None or agency.billing_status == BillingStatus.PROVISIONING:
            billing.enqueue_sync(rt.redis, agency.id)  # provision or link first
            report.syncs_enqueued += 1
            continue
        if agency.pending:
            billing.enqueue_sync(rt.redis, agency.id)  # the sync wins: it sets Stripe absolutely
            report.syncs_enqueued += 1
            continue
        snapshot = remote.get(agency.subscription_id)
        if wanted is None and snapshot is None:
            report.missing_in_stripe.append(agency.id)
            continue
        if snapshot is not None and agrees(agency, snapshot):
            report.in_agreement += 1
            continue
        # Differs (or not listed): heal with a fresh look under the billing lock, since a
        # sync may have changed Stripe since the list was read.
        applied = handlers.reconcile_agency(
            rt, gateway, agency.id, cause="reconcile", actor="reconcile", counter=counter
        )
        if applied is None or applied.sync:
            report.syncs_enqueued += 1
        elif applied.changed or applied.status != agency.billing_status:
            report.healed += 1
        else:
            report.in_agreement += 1
        if applied is not None and applied.adopted:
            report.adopted[agency.id] = applied.adopted
    rt.transaction(lambda s: store.clear_reconcile_requests(s, wanted, started_at))
    report.stripe_calls = counter.calls
    report.seconds = round(time.monotonic() - clock, 3)
    log.info(
        "reconcile: %d agencies, %d in agreement, %d healed, %d adopted, %d syncs, "
        "%d missing in Stripe, %d events recovered, %d Stripe calls, %.1f s",
        report.agencies,
        report.in_agreement,
        report.healed,
        len(report.adopted),
        report.syncs_enqueued,
        len(report.missing_in_stripe),
        report.events_recovered,
        report.stripe_calls,
        report.seconds,
    )
    return report


def agrees(agency: store.LocalAgency, snapshot: SubscriptionSnapshot) -> bool:
    """Nothing to do: quantities, billed counts, status and trial end all match Stripe."""
    if agency.pending:
        return False  # a local change waits: the billing worker must run
    for seat, purchased in agency.purchased.items():
        quantity = snapshot.quantity(seat)
        if quantity != purchased or agency.billed.get(seat) != quantity:
            return False
    if status_from_stripe(snapshot.status) != agency.billing_status:
        return False
    return snapshot.trial_end is None or snapshot.trial_end == agency.trial_ends_at


def recover_missed_events(
    rt: Runtime, gateway: StripeGateway, counter: reads.CallCounter | None = None
) -> int:
    """Store and enqueue the events Stripe has that we never received."""
    newest = rt.transaction(store.latest_created)
    floor = utcnow() - EVENT_LOOKBACK
    since = max(newest - EVENT_OVERLAP, floor) if newest is not None else floor
    page: list[dict[str, Any]] = []
    recovered = 0
    types = sorted(handlers.HANDLED_TYPES)
    for event in reads.events_since(gateway, int(since.timestamp()), types, counter):
        page.append(event)
        if len(page) >= reads.PAGE:
            recovered += _store_missing(rt, page)
            page = []
    recovered += _store_missing(rt, page)
    return recovered


def _store_missing(rt: Runtime, events: list[dict[str, Any]]) -> int:
    if not events:
        return 0

    def work(session: Any) -> list[str]:
        known = store.stored_ids(session, (event["id"] for event in events))
        return [
            event["id"]
            for event in events
            if event["id"] not in known
            and store.insert_event(session, event, StripeEventStatus.RECEIVED)
        ]

    new_ids = set(rt.transaction(work))
    for event in reversed(events):  # the list is newest first: enqueue the oldest first
        if event["id"] in new_ids:
            stripe_events.enqueue_event(rt.redis, event["id"])
    return len(new_ids)
