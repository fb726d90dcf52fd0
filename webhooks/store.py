"""The database side of webhooks and reconciliation. Takes a Session; never commits.

Two halves: the `stripe_events` rows (stored once under Stripe's event id,
whatever number of deliveries race), and applying a freshly fetched
subscription or invoice to the ledger with the rules of `webhooks.drift`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.elements import ColumnElement

from seatsvc.billing.gateway import SubscriptionSnapshot
from seatsvc.billing.sync import status_from_stripe
from seatsvc.models import Agency, BillingOutbox, Notification, SeatEvent, StripeEvent, utcnow
from seatsvc.services import outbox
from seatsvc.services.pools import lock_pools, seats_used
from seatsvc.types import (
    BillingStatus,
    NotificationKind,
    SeatEventType,
    StripeEventStatus,
)
from webhooks import drift

INVOICE_TYPES = ("invoice.paid", "invoice.payment_failed")
FINISHED = (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED)


# ---- stripe_events rows -------------------------------------------------------------


@dataclass(frozen=True)
class EventInfo:
    """What a handler needs of a stored event (a plain value, safe outside the session)."""

    id: str
    type: str
    created: datetime
    object: Mapping[str, Any]


def insert_event(session: Session, event: Mapping[str, Any], status: StripeEventStatus) -> bool:
    """Store a verified event once: True if this call stored it, False for a duplicate.

    ON CONFLICT DO NOTHING on the id, so concurrent deliveries of one event store it
    once without a unique-key error (and without retrying the transaction).
    """
    obj = event["data"]["object"]
    values = {
        "id": event["id"],
        "type": event["type"],
        "created": datetime.fromtimestamp(int(event["created"]), UTC),
        "object_id": str(obj["id"])[:255] if obj.get("id") else None,
        "payload": dict(event),
        "received_at": utcnow(),
        "status": status.value,
        "attempts": 0,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stored = session.execute(
        insert(StripeEvent)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeEvent.id)
    ).scalar_one_or_none()
    return stored is not None


def start_attempt(session: Session, event_id: str, force: bool) -> EventInfo | None:
    """None when there is nothing to do (unknown id, or already handled and not forced)."""
    row = session.get(StripeEvent, event_id, with_for_update=True)
    if row is None or (row.status in FINISHED and not force):
        return None
    row.attempts += 1
    return EventInfo(row.id, row.type, row.created, dict(row.payload["data"]["object"]))


def finish(
    session: Session,
    event_id: str,
    status: StripeEventStatus,
    agency_id: str | None,
    note: str | None = None,
) -> None:
    row = session.get(StripeEvent, event_id, with_for_update=True)
    assert row is not None, event_id
    row.status = status
    row.agency_id = agency_id or row.agency_id
    row.last_error = note
    row.processed_at = utcnow()


def fail(session: Session, event_id: str, reason: str) -> None:
    row = session.get(StripeEvent, event_id, with_for_update=True)
    if row is not None:
        row.status = StripeEventStatus.FAILED
        row.last_error = reason[:1000]


def stored_ids(session: Session, ids: Iterable[str]) -> set[str]:
    wanted = list(ids)
    if not wanted:
        return set()
    return set(session.scalars(select(StripeEvent.id).where(StripeEvent.id.in_(wanted))))


def latest_created(session: Session) -> datetime | None:
    found: datetime | None = session.scalar(select(func.max(StripeEvent.created)))
    return found.replace(tzinfo=UTC) if found and found.tzinfo is None else found


def received_before(session: Session, cutoff: datetime, limit: int) -> list[str]:
    """Stored but never handled (the enqueue was lost): for the sweep."""
    return list(
        session.scalars(
            select(StripeEvent.id)
            .where(
                StripeEvent.status == StripeEventStatus.RECEIVED,
                StripeEvent.received_at < cutoff,
            )
            .order_by(StripeEvent.created)
            .limit(limit)
        )
    )


def select_for_reprocess(
    session: Session, ids: Iterable[str], event_type: str | None, failed: bool
) -> list[str]:
    """Ids to run again, oldest first: named ones, one type, and/or every failed one."""
    conditions: list[ColumnElement[bool]] = []
    wanted = list(ids)
    if wanted:
        conditions.append(StripeEvent.id.in_(wanted))
    if event_type:
        conditions.append(StripeEvent.type == event_type)
    if failed:
        conditions.append(StripeEvent.status == StripeEventStatus.FAILED)
    if not conditions:
        return []
    return list(
        session.scalars(
            select(StripeEvent.id).where(or_(*conditions)).order_by(StripeEvent.created)
        )
    )


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
    agency.billing_status = status_from_stripe(snapshot.status)
    if snapshot.trial_end is not None:
        agency.trial_ends_at = snapshot.trial_end
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
    event = SeatEvent(
        agency_id=agency.id,
        type=SeatEventType.EXTERNAL_CHANGE,
        seat_type=seat_type,
        delta=decision.delta,
        purchased_after=decision.stripe_quantity,
        actor=actor,
        detail={
            "reason": "changed in Stripe",
            "subscription": subscription_id,
            "previous": before.purchased,
            "cause": cause,
        },
    )
    session.add(event)
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


# ---- invoices -------------------------------------------------------------------------------


def apply_invoice(
    session: Session,
    agency_id: str,
    event: EventInfo,
    invoice: Mapping[str, Any],
) -> drift.InvoiceOutcome:
    """Billing attention from an invoice as re-fetched now; an email per failed invoice."""
    agency = session.get(Agency, agency_id, with_for_update=True)
    assert agency is not None, agency_id
    newer = session.scalar(
        select(func.count())
        .select_from(StripeEvent)
        .where(
            StripeEvent.agency_id == agency_id,
            StripeEvent.type.in_(INVOICE_TYPES),
            StripeEvent.status == StripeEventStatus.PROCESSED,
            StripeEvent.created > event.created,
            StripeEvent.id != event.id,
        )
    )
    outcome = drift.decide_invoice(event.type, str(invoice.get("status")), bool(newer))
    agency.billing_attention = drift.attention_after_invoice(agency.billing_attention, outcome)
    if outcome == drift.InvoiceOutcome.FLAG and not _told_since(session, agency_id, invoice):
        outbox.notify(
            session,
            NotificationKind.PAYMENT_FAILED,
            f"payment_failed:{agency_id}:invoice:{invoice['id']}",
            agency_id,
            payload={
                key: invoice.get(key)
                for key in ("amount_due", "currency", "hosted_invoice_url", "next_payment_attempt")
                if invoice.get(key) is not None
            }
            | {"cause": f"invoice:{invoice['id']}"},
        )
    return outcome


def _told_since(session: Session, agency_id: str, invoice: Mapping[str, Any]) -> bool:
    """The billing worker already emailed about this decline (it charged the invoice itself
    and keys its email by day, not by invoice): one email per decline, not two."""
    created = datetime.fromtimestamp(int(invoice.get("created") or 0), UTC)
    found = session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.agency_id == agency_id,
            Notification.kind == NotificationKind.PAYMENT_FAILED,
            Notification.created_at >= created,
            # Not ours (`…:invoice:in_…`); the worker keys by day (`…:invoice:<date>:<n>`).
            ~Notification.dedupe_key.like(f"payment_failed:{agency_id}:invoice:in%"),
        )
    )
    return bool(found)


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
