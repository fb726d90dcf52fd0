"""The database side of billing: what Stripe must become, and what it confirmed.

Jobs call `plan_sync` in one short transaction, talk to Stripe with no
transaction open (a seat request must never wait on Stripe), then record the
answer in another short transaction. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from seatsvc.billing.gateway import SubscriptionSnapshot
from seatsvc.billing.keys import Intent
from seatsvc.billing.limits import UpdateWindow, after_update
from seatsvc.db import for_update
from seatsvc.models import Agency, BillingOutbox, SeatPool, utcnow
from seatsvc.services import outbox
from seatsvc.services.agencies import record_seat_event
from seatsvc.services.pools import lock_pools
from seatsvc.types import (
    BillingStatus,
    NotificationKind,
    OutboxStatus,
    SeatEventType,
    SeatType,
)

# Stripe's subscription statuses, in the API's vocabulary.
_STATUS_FROM_STRIPE = {
    "trialing": BillingStatus.TRIALING,
    "active": BillingStatus.ACTIVE,
    "past_due": BillingStatus.PAST_DUE,
    "incomplete": BillingStatus.PAST_DUE,  # waiting for a first payment
    "paused": BillingStatus.PAUSED,  # a trial ended without a payment method
    "unpaid": BillingStatus.UNPAID,
    "canceled": BillingStatus.CANCELED,
    "incomplete_expired": BillingStatus.CANCELED,
}


class SyncAction(StrEnum):
    PROVISION = "provision"  # no Stripe customer/subscription yet
    LINK = "link"  # an existing subscription whose quantities we have not read
    SYNC = "sync"  # set Stripe's quantities to the purchased ones
    NONE = "none"  # Stripe already holds what the agency bought


@dataclass(frozen=True)
class SyncPlan:
    agency_id: str
    action: SyncAction
    version: int
    purchased: dict[str, int]
    billed: dict[str, int | None]
    customer_id: str | None
    subscription_id: str | None
    name: str
    billing_email: str
    trial_days: int | None
    last_change_at: datetime
    first_pending_at: datetime | None
    window: UpdateWindow
    created_at: datetime  # the agency's: none of its Stripe objects is older
    attempts: int = 0  # tries since the last confirmed write that ended uncertain
    done: bool = False  # the outbox row says Stripe holds the purchased seats

    @property
    def intent(self) -> Intent:
        """What names this try's writes: a new try after an uncertain one gets new keys."""
        return Intent(self.agency_id, self.version, self.attempts)

    @property
    def uncertain(self) -> bool:
        """An earlier try failed or was replayed: Stripe may hold anything; look first."""
        return self.attempts > 0


def status_from_stripe(status: str) -> BillingStatus:
    return _STATUS_FROM_STRIPE.get(status, BillingStatus.PAST_DUE)


def plan_sync(session: Session, agency_id: str) -> SyncPlan | None:
    agency = session.get(Agency, agency_id)
    row = session.get(BillingOutbox, agency_id)
    if agency is None or row is None:
        return None
    pools = {pool.seat_type: pool for pool in agency.pools}
    purchased = {seat: pools[seat].purchased for seat in pools}
    billed = {seat: pools[seat].billed for seat in pools}
    if not agency.stripe_customer_id or not agency.stripe_subscription_id:
        action = SyncAction.PROVISION
    elif agency.billing_status == BillingStatus.PROVISIONING and any(
        value is None for value in billed.values()
    ):
        action = SyncAction.LINK
    elif row.synced_version < row.desired_version or purchased != billed:
        action = SyncAction.SYNC
    else:
        action = SyncAction.NONE
    return SyncPlan(
        agency_id=agency_id,
        action=action,
        version=row.desired_version,
        purchased=purchased,
        billed=billed,
        customer_id=agency.stripe_customer_id,
        subscription_id=agency.stripe_subscription_id,
        name=agency.name,
        billing_email=agency.admin_emails[0],
        trial_days=_trial_days_left(agency),
        last_change_at=row.updated_at,
        first_pending_at=row.first_pending_at,
        window=UpdateWindow(row.window_started_at, row.window_updates),
        created_at=agency.created_at,
        attempts=row.attempts,
        done=row.status == OutboxStatus.DONE,
    )


def _trial_days_left(agency: Agency) -> int | None:
    if not agency.trial_requested or agency.trial_ends_at is None:
        return None
    left = agency.trial_ends_at - utcnow()
    return max(1, round(left / timedelta(days=1))) if left > timedelta(0) else None


def record_customer(session: Session, agency_id: str, customer_id: str) -> None:
    agency = _agency(session, agency_id)
    agency.stripe_customer_id = customer_id


def record_subscription(
    session: Session, plan: SyncPlan, snapshot: SubscriptionSnapshot, linked: bool
) -> None:
    """A subscription was created for the agency, or an existing one read for the first time."""
    assert not snapshot.replayed, "a replayed answer is not Stripe's present"
    agency = _agency(session, plan.agency_id)
    agency.stripe_subscription_id = snapshot.id
    agency.stripe_customer_id = snapshot.customer_id
    adopt_status(agency, snapshot)
    pools = _locked_pools(session, plan.agency_id)
    for seat, pool in pools.items():
        stripe_quantity = snapshot.quantity(seat)
        if linked:
            # Stripe's seats become ours; anything added here since creation comes on top.
            pool.purchased += stripe_quantity
            if stripe_quantity:
                record_seat_event(
                    session,
                    plan.agency_id,
                    SeatEventType.EXTERNAL_CHANGE,
                    seat,
                    stripe_quantity,
                    pool.purchased,
                    actor="stripe",
                    detail={"reason": "linked", "subscription": snapshot.id},
                )
        pool.billed = stripe_quantity
        pool.billed_at = utcnow()
        item = snapshot.items.get(seat)
        pool.stripe_item_id = item.id if item else None
    row = _outbox_row(session, plan.agency_id)
    _settle(row, pools, plan.version)
    row.attempts = 0  # the subscription is known: later writes start a fresh run of tries
    row.last_error = None


def record_synced(
    session: Session,
    plan: SyncPlan,
    snapshot: SubscriptionSnapshot,
    now: datetime,
    sent_update: bool,
) -> bool:
    """Stripe holds `snapshot` now. Returns True when the agency is fully in sync.

    `snapshot` must be Stripe's present: the fresh answer to our own write or a
    fresh retrieve, never a replayed answer. Only a fresh answer to our write (or
    being in sync) ends a run of uncertain tries: after a mere retrieve, the next
    write must still use a new key.
    """
    assert not snapshot.replayed, "a replayed answer is not Stripe's present"
    agency = _agency(session, plan.agency_id)
    adopt_status(agency, snapshot)
    pools = _locked_pools(session, plan.agency_id)
    row = _outbox_row(session, plan.agency_id)
    changed = False
    for seat, pool in pools.items():
        confirmed = snapshot.quantity(seat)
        item = snapshot.items.get(seat)
        pool.stripe_item_id = item.id if item else None  # Stripe's present: no item, no id
        previous = pool.billed
        pool.billed = confirmed
        pool.billed_at = now
        if previous != confirmed:
            changed = True
            record_seat_event(
                session,
                plan.agency_id,
                SeatEventType.BILLING_SYNCED,
                seat,
                confirmed - (previous or 0),
                pool.purchased,
                actor="billing",
                detail={"subscription": snapshot.id, "billed": confirmed, "version": plan.version},
            )
    if sent_update:
        window = after_update(plan.window, now)
        row.window_started_at, row.window_updates = window.started_at, window.updates
    if changed:
        row.invoice_needed = True
    in_sync = _settle(row, pools, plan.version)
    if sent_update and not in_sync:
        # Changes that arrived during the call start a new debounce; otherwise, under
        # a steady stream of seat changes, every later round would be "overdue" and
        # the updates would go out back to back instead of one per max_wait.
        row.first_pending_at = now
    if in_sync or sent_update:
        row.attempts = 0
        row.last_error = None
    return in_sync


def record_confirmed(session: Session, plan: SyncPlan) -> bool:
    """Every pool's billed count (each one read from Stripe: a write's fresh answer, a
    retrieve, a webhook's re-fetch) equals what was bought: the row is done."""
    pools = _locked_pools(session, plan.agency_id)
    row = _outbox_row(session, plan.agency_id)
    in_sync = _settle(row, pools, plan.version)
    if in_sync:
        row.attempts = 0
        row.last_error = None
    return in_sync


def record_uncertain(session: Session, agency_id: str, reason: str) -> None:
    """Stripe replayed an old answer: the next write of this agency needs a new key."""
    record_failure(session, agency_id, reason, permanent=False)


def record_failure(session: Session, agency_id: str, reason: str, permanent: bool) -> None:
    pools = _locked_pools(session, agency_id)  # the lock order: pools, then the outbox row
    row = _outbox_row(session, agency_id)
    row.attempts += 1
    row.last_error = reason[:1000]
    if permanent:
        row.status = OutboxStatus.FAILED
        for pool in pools.values():
            if pool.billed != pool.purchased:
                record_seat_event(
                    session,
                    agency_id,
                    SeatEventType.BILLING_FAILED,
                    pool.seat_type,
                    0,
                    pool.purchased,
                    actor="billing",
                    detail={"reason": reason[:300]},
                )


def record_payment_declined(session: Session, agency_id: str, reason: str, cause: str) -> None:
    """The card was declined: seats stay with the clinicians, the admins must act."""
    agency = _agency(session, agency_id)
    agency.billing_attention = "payment_failed"
    outbox.notify(
        session,
        NotificationKind.PAYMENT_FAILED,
        f"payment_failed:{agency_id}:{cause}",
        agency_id,
        payload={"reason": reason[:300], "cause": cause},
    )


def record_invoice(session: Session, agency_id: str, day: str, paid: bool) -> None:
    row = _outbox_row(session, agency_id)
    if row.invoice_day != day:
        row.invoice_day, row.invoices_today = day, 0
    row.invoices_today += 1
    row.invoice_needed = False
    if paid:
        agency = _agency(session, agency_id)
        if agency.billing_attention == "payment_failed":
            agency.billing_attention = None


def item_ids(session: Session, agency_id: str) -> dict[str, str | None]:
    pools = session.scalars(select(SeatPool).where(SeatPool.agency_id == agency_id))
    return {pool.seat_type: pool.stripe_item_id for pool in pools}


def invoices_on(session: Session, agency_id: str, day: str) -> int:
    row = session.get(BillingOutbox, agency_id)
    return row.invoices_today if row is not None and row.invoice_day == day else 0


def agencies_needing_invoice(session: Session) -> list[str]:
    return list(
        session.scalars(
            select(BillingOutbox.agency_id).where(BillingOutbox.invoice_needed.is_(True))
        )
    )


def pending_agency_ids(session: Session, older_than: datetime) -> list[str]:
    """Rows not yet converged whose last change is older than `older_than` (for the sweep)."""
    return list(
        session.scalars(
            select(BillingOutbox.agency_id).where(
                BillingOutbox.status == OutboxStatus.PENDING,
                BillingOutbox.updated_at < older_than,
            )
        )
    )


def _settle(row: BillingOutbox, pools: dict[str, SeatPool], version: int) -> bool:
    """Stripe reached `version`: done if nothing newer arrived and every quantity matches."""
    row.synced_version = max(row.synced_version, version)
    in_sync = row.synced_version >= row.desired_version and all(
        pool.billed == pool.purchased for pool in pools.values()
    )
    if in_sync:
        row.status = OutboxStatus.DONE
        row.first_pending_at = None
    else:
        row.status = OutboxStatus.PENDING
    return in_sync


def adopt_status(agency: Agency, snapshot: SubscriptionSnapshot) -> None:
    """The agency's billing status and trial end, as Stripe holds them now."""
    agency.billing_status = status_from_stripe(snapshot.status)
    if snapshot.trial_end is not None:
        agency.trial_ends_at = snapshot.trial_end


def _agency(session: Session, agency_id: str) -> Agency:
    agency = session.get(Agency, agency_id)
    assert agency is not None, agency_id
    return agency


def _outbox_row(session: Session, agency_id: str) -> BillingOutbox:
    query = select(BillingOutbox).where(BillingOutbox.agency_id == agency_id)
    return session.execute(for_update(query)).scalar_one()


def _locked_pools(session: Session, agency_id: str) -> dict[str, SeatPool]:
    pools = lock_pools(session, agency_id)
    assert set(pools) == {seat.value for seat in SeatType}, pools
    return pools
