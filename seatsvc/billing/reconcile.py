"""Applying Stripe's state to the ledger: subscriptions, invoices, and the comparison sweep.

The one place where what Stripe holds meets what the ledger says. Webhook
handlers and the reconcile job both come here with a freshly fetched object,
under the agency's billing lock, and the pure rules of `seatsvc.billing.drift`
decide, so a lost webhook healed by the sweep ends exactly where the webhook
would have left it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, selectinload

from seatsvc.billing import drift
from seatsvc.billing.gateway import StripeGateway, SubscriptionSnapshot
from seatsvc.billing.locks import agency_lock
from seatsvc.billing.sync import adopt_status, status_from_stripe
from seatsvc.models import Agency, BillingOutbox, utcnow
from seatsvc.runtime import Runtime
from seatsvc.services import outbox
from seatsvc.services.agencies import record_seat_event
from seatsvc.services.outbox import OutboxTouched
from seatsvc.services.pools import lock_pools, seats_used
from seatsvc.types import BillingStatus, NotificationKind, SeatEventType

log = logging.getLogger(__name__)


# ---- which agency an object belongs to --------------------------------------------------


def find_agency_id(
    session: Session, subscription_id: str | None, customer_id: str | None
) -> str | None:
    """By subscription, else by customer (a new subscription's first events may arrive
    before the billing worker recorded its id; the customer id is recorded first)."""
    for column, value in (
        (Agency.stripe_subscription_id, subscription_id),
        (Agency.stripe_customer_id, customer_id),
    ):
        if value:
            found = session.scalar(select(Agency.id).where(column == value))
            if found is not None:
                return found
    return None


def subscription_of(session: Session, agency_id: str) -> tuple[str | None, str]:
    """(the agency's subscription id, its billing status); (None, ...) while provisioning."""
    agency = session.get(Agency, agency_id)
    if agency is None:
        return None, BillingStatus.PROVISIONING
    if agency.billing_status == BillingStatus.PROVISIONING:
        return None, agency.billing_status
    return agency.stripe_subscription_id, agency.billing_status


# ---- applying a fresh subscription to the ledger ------------------------------------------


@dataclass
class Applied:
    """What comparing one subscription with the ledger did."""

    agency_id: str
    adopted: dict[str, int] = field(default_factory=dict)  # seat type -> new purchased
    confirmed: list[str] = field(default_factory=list)
    sync: bool = False  # a local change is pending: a billing sync was enqueued
    over_capacity: list[str] = field(default_factory=list)
    status: str | None = None

    @property
    def changed(self) -> bool:
        return bool(self.adopted or self.confirmed)


def apply_subscription(
    session: Session, agency_id: str, snapshot: SubscriptionSnapshot, cause: str, actor: str
) -> Applied:
    """Compare the subscription as Stripe holds it now with the ledger, under the pool locks.

    Called with the agency's billing lock held, so no sync runs meanwhile; the pool
    and outbox row locks keep seat requests out until the decision is committed.
    """
    applied = Applied(agency_id)
    agency = session.get(Agency, agency_id)
    if agency is None or agency.billing_status == BillingStatus.PROVISIONING:
        return applied  # the billing worker links or provisions it first
    pools = lock_pools(session, agency_id)  # the lock order: pools, then the outbox row
    row = session.execute(
        select(BillingOutbox)
        .where(BillingOutbox.agency_id == agency_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one()
    session.refresh(agency)
    used = seats_used(session, agency_id)
    local = {
        seat: drift.LocalSeats(pool.purchased, pool.billed, used.get(seat, 0))
        for seat, pool in pools.items()
    }
    pending = drift.local_change_pending(row.desired_version, row.synced_version, row.status)
    stripe_quantities = {seat: snapshot.quantity(seat) for seat in pools}
    now = utcnow()
    for decision in drift.decide(local, stripe_quantities, pending):
        pool = pools[decision.seat_type]
        item = snapshot.items.get(decision.seat_type)
        if item is not None:
            pool.stripe_item_id = item.id
        match decision.action:
            case drift.DriftAction.CONFIRM:
                pool.billed, pool.billed_at = decision.stripe_quantity, now
                applied.confirmed.append(decision.seat_type)
            case drift.DriftAction.ADOPT:
                _adopt(session, agency, pool.seat_type, decision, local, snapshot.id, cause, actor)
                pool.purchased = pool.billed = decision.stripe_quantity
                pool.billed_at = now
                applied.adopted[decision.seat_type] = decision.stripe_quantity
                if decision.over_capacity:
                    applied.over_capacity.append(decision.seat_type)
            case drift.DriftAction.SYNC:
                applied.sync = True
            case drift.DriftAction.NONE:
                pass
    if applied.sync:
        outbox.touched(session).billing_agency_ids.add(agency_id)  # enqueued after commit
    over_now = any(used.get(seat, 0) > pool.purchased for seat, pool in pools.items())
    agency.billing_attention = drift.attention_after_seats(agency.billing_attention, over_now)
    adopt_status(agency, snapshot)
    applied.status = agency.billing_status
    return applied


def _adopt(
    session: Session,
    agency: Agency,
    seat_type: str,
    decision: drift.SeatDrift,
    local: Mapping[str, drift.LocalSeats],
    subscription_id: str,
    cause: str,
    actor: str,
) -> None:
    """The ledger event, and when members now outnumber seats, the admins' email."""
    before = local[seat_type]
    event = record_seat_event(
        session,
        agency.id,
        SeatEventType.EXTERNAL_CHANGE,
        seat_type,
        decision.delta,
        decision.stripe_quantity,
        actor=actor,
        detail={
            "reason": "changed in Stripe",
            "subscription": subscription_id,
            "previous": before.purchased,
            "cause": cause,
        },
    )
    if decision.over_capacity:
        session.flush()  # the ledger event's id makes the email's key unique per cause
        outbox.notify(
            session,
            NotificationKind.OVER_CAPACITY,
            f"over_capacity:{agency.id}:{event.id}",
            agency.id,
            payload={
                "seat_type": seat_type,
                "purchased": decision.stripe_quantity,
                "used": before.used,
                "previous": before.purchased,
            },
        )


# ---- reconcile ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalAgency:
    """One agency as the sweep compares it with Stripe's list."""

    id: str
    subscription_id: str | None
    billing_status: str
    trial_ends_at: datetime | None
    purchased: dict[str, int]
    billed: dict[str, int | None]
    pending: bool


def agencies_for_reconcile(session: Session, agency_ids: Iterable[str] | None) -> list[LocalAgency]:
    """Every agency (or the named ones) with its pools and outbox state, in three queries."""
    query = select(Agency).options(selectinload(Agency.pools)).order_by(Agency.id)
    wanted = list(agency_ids) if agency_ids is not None else None
    if wanted is not None:
        query = query.where(Agency.id.in_(wanted))
    agencies = list(session.scalars(query))
    outbox_query = select(BillingOutbox)
    if wanted is not None:
        outbox_query = outbox_query.where(BillingOutbox.agency_id.in_(wanted))
    rows = {row.agency_id: row for row in session.scalars(outbox_query)}
    found = []
    for agency in agencies:
        row = rows.get(agency.id)
        pending = row is None or drift.local_change_pending(
            row.desired_version, row.synced_version, row.status
        )
        found.append(
            LocalAgency(
                id=agency.id,
                subscription_id=agency.stripe_subscription_id,
                billing_status=agency.billing_status,
                trial_ends_at=agency.trial_ends_at,
                purchased={pool.seat_type: pool.purchased for pool in agency.pools},
                billed={pool.seat_type: pool.billed for pool in agency.pools},
                pending=pending,
            )
        )
    return found


def clear_reconcile_requests(
    session: Session, agency_ids: Iterable[str] | None, before: datetime
) -> None:
    """Requests made before the comparison started are answered (None: every agency)."""
    query = update(BillingOutbox).where(
        BillingOutbox.reconcile_requested_at.is_not(None),
        BillingOutbox.reconcile_requested_at <= before,
    )
    if agency_ids is not None:
        query = query.where(BillingOutbox.agency_id.in_(list(agency_ids)))
    session.execute(
        query.values(reconcile_requested_at=None).execution_options(synchronize_session=False)
    )


# ---- healing one agency, and the comparison sweep -------------------------------------------


def heal_agency(
    rt: Runtime, gateway: StripeGateway, agency_id: str, cause: str, actor: str
) -> Applied | None:
    """Compare one agency with its subscription as Stripe holds it now, and heal.

    None when there is no subscription to compare yet (the billing worker
    provisions or links it first: a sync is requested).
    """
    with agency_lock(rt.redis, agency_id, rt.config.billing_lock_seconds):
        subscription_id, _status = rt.transaction(lambda s: subscription_of(s, agency_id))
        if subscription_id is None:
            request_sync(rt, agency_id)
            return None
        snapshot = gateway.get_subscription(subscription_id)
        applied = rt.transaction(lambda s: apply_subscription(s, agency_id, snapshot, cause, actor))
    if applied.adopted:
        log.info("agency %s: Stripe quantities adopted %s (%s)", agency_id, applied.adopted, cause)
    return applied


def request_sync(rt: Runtime, agency_id: str) -> None:
    """Ask the billing worker to converge this agency (through the after-commit dispatcher)."""
    rt.after_commit(OutboxTouched(billing_agency_ids={agency_id}))


def describe(applied: Applied | None) -> str:
    if applied is None:
        return "no subscription yet: billing sync enqueued"
    parts = [f"status {applied.status}"]
    if applied.adopted:
        parts.append(f"adopted {applied.adopted}")
    if applied.confirmed:
        parts.append(f"confirmed {applied.confirmed}")
    if applied.sync:
        parts.append("local change pending: billing sync enqueued")
    if applied.over_capacity:
        parts.append(f"over capacity {applied.over_capacity}")
    return "; ".join(parts)


@dataclass
class Report:
    """What one comparison with Stripe saw and did (the reconcile job's result)."""

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


def compare_with_stripe(
    rt: Runtime, gateway: StripeGateway, agency_ids: Iterable[str] | None = None
) -> Report:
    """Every agency (or the named ones) against Stripe: one list call per hundred agencies;
    only an agency that disagrees costs more (a fresh retrieve under its lock)."""
    started_at, clock, calls_before = utcnow(), time.monotonic(), gateway.calls
    report = Report()
    wanted = list(agency_ids) if agency_ids is not None else None
    local = rt.transaction(lambda s: agencies_for_reconcile(s, wanted))
    report.agencies = len(local)
    # Named agencies: their own subscriptions, fetched under their locks below.
    listed = gateway.all_subscriptions() if wanted is None else iter(())
    remote = {snap.id: snap for snap in listed}
    for agency in local:
        if agency.subscription_id is None or agency.billing_status == BillingStatus.PROVISIONING:
            request_sync(rt, agency.id)  # provision or link first
            report.syncs_enqueued += 1
            continue
        if agency.pending:
            request_sync(rt, agency.id)  # the sync wins: it sets Stripe absolutely
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
        applied = heal_agency(rt, gateway, agency.id, cause="reconcile", actor="reconcile")
        if applied is None or applied.sync:
            report.syncs_enqueued += 1
        elif applied.changed or applied.status != agency.billing_status:
            report.healed += 1
        else:
            report.in_agreement += 1
        if applied is not None and applied.adopted:
            report.adopted[agency.id] = applied.adopted
    rt.transaction(lambda s: clear_reconcile_requests(s, wanted, started_at))
    report.stripe_calls = gateway.calls - calls_before
    report.seconds = round(time.monotonic() - clock, 3)
    return report


def agrees(agency: LocalAgency, snapshot: SubscriptionSnapshot) -> bool:
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
