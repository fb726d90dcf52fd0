"""Agencies: create/update, BAA, settings, seat quantities, trial, the seat ledger."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from seatsvc.errors import InvalidState, NotFound, ValidationFailed
from seatsvc.models import Agency, BillingOutbox, SeatEvent, SeatPool, utcnow
from seatsvc.seat_rules import check_settings_change, decide_quantity_change
from seatsvc.services import outbox
from seatsvc.services.pools import locked_pool_state, seats_used
from seatsvc.types import BillingStatus, OutboxStatus, SeatEventType, SeatType, SyncState

TRIAL_DAYS = 14
TRIAL_SEAT_TYPE = SeatType.BASE


@dataclass(frozen=True)
class SeatSummary:
    purchased: int
    used: int
    billed: int | None
    sync: SyncState

    @property
    def available(self) -> int:
        return max(0, self.purchased - self.used)


@dataclass(frozen=True)
class AgencyView:
    agency: Agency
    seats: dict[str, SeatSummary]
    created: bool = False


def get_agency(session: Session, agency_id: str) -> Agency:
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFound(f"agency {agency_id!r} not found")
    return agency


def view_agency(session: Session, agency: Agency, created: bool = False) -> AgencyView:
    used = seats_used(session, agency.id)
    sync_row = session.get(BillingOutbox, agency.id)
    failed = sync_row is not None and sync_row.status == OutboxStatus.FAILED
    seats = {}
    for pool in agency.pools:
        if failed:
            sync = SyncState.FAILED
        elif pool.billed == pool.purchased:
            sync = SyncState.IN_SYNC
        else:
            sync = SyncState.PENDING
        seats[pool.seat_type] = SeatSummary(
            purchased=pool.purchased,
            used=used.get(pool.seat_type, 0),
            billed=pool.billed,
            sync=sync,
        )
    return AgencyView(agency=agency, seats=seats, created=created)


def load_agency_view(session: Session, agency_id: str) -> AgencyView:
    return view_agency(session, get_agency(session, agency_id))


def upsert_agency(session: Session, agency_id: str, data: dict[str, Any]) -> AgencyView:
    agency = session.get(Agency, agency_id, with_for_update=True)
    _require_stripe_ids_unclaimed(session, agency_id, data)
    if agency is None:
        return view_agency(session, _create_agency(session, agency_id, data), created=True)
    _refuse_ending_trial_here(agency, data)
    agency.name = data["name"]
    agency.admin_emails = list(data["admin_emails"])
    _link_stripe_ids(session, agency, data)
    return view_agency(session, agency)


def _refuse_ending_trial_here(agency: Agency, data: dict[str, Any]) -> None:
    """`"trial": false` on an agency in (or paused after) its trial is not ignored: a trial
    ends by upgrading, which needs seats and payment details (POST …/upgrade)."""
    paused = agency.billing_status == BillingStatus.PAUSED
    if data.get("trial") is False and (agency.in_trial or paused):
        raise InvalidState(
            "a trial ends by upgrading to a paid plan: "
            f"POST /v1/agencies/{agency.id}/upgrade with the seats and a return_url",
            {"upgrade": f"/v1/agencies/{agency.id}/upgrade"},
        )


def _require_stripe_ids_unclaimed(session: Session, agency_id: str, data: dict[str, Any]) -> None:
    """A Stripe customer or subscription bills one agency: a clear 409, not a unique-key 500."""
    for field in ("stripe_customer_id", "stripe_subscription_id"):
        wanted = data.get(field)
        if wanted is None:
            continue
        column = getattr(Agency, field)
        owner = session.scalar(select(Agency.id).where(column == wanted, Agency.id != agency_id))
        if owner is not None:
            raise InvalidState(f"{field} {wanted!r} belongs to another agency", {"field": field})


def _create_agency(session: Session, agency_id: str, data: dict[str, Any]) -> Agency:
    now = utcnow()
    linking = bool(data.get("stripe_subscription_id"))
    trial = bool(data.get("trial", True)) and not linking
    agency = Agency(
        id=agency_id,
        name=data["name"],
        admin_emails=list(data["admin_emails"]),
        stripe_customer_id=data.get("stripe_customer_id"),
        stripe_subscription_id=data.get("stripe_subscription_id"),
        trial_requested=trial,
        billing_status=BillingStatus.PROVISIONING,
        trial_ends_at=now + timedelta(days=TRIAL_DAYS) if trial else None,
        trial_seat_limit=1,
        created_at=now,
    )
    session.add(agency)
    session.flush()
    for seat_type in SeatType:
        trial_seats = 1 if trial and seat_type == TRIAL_SEAT_TYPE else 0
        session.add(SeatPool(agency_id=agency_id, seat_type=seat_type, purchased=trial_seats))
        if trial_seats:
            record_seat_event(
                session,
                agency_id,
                SeatEventType.PURCHASED,
                seat_type,
                trial_seats,
                trial_seats,
                actor="system",
                detail={"reason": "trial"},
            )
    # Provision (or link) the Stripe subscription: the billing worker's first job.
    outbox.create_billing_outbox(session, agency_id)
    session.flush()
    session.refresh(agency)
    return agency


def _link_stripe_ids(session: Session, agency: Agency, data: dict[str, Any]) -> None:
    changed = False
    for field in ("stripe_customer_id", "stripe_subscription_id"):
        wanted = data.get(field)
        current = getattr(agency, field)
        if wanted is None or wanted == current:
            continue
        if current is not None:
            raise InvalidState(
                f"{field} is already {current!r}; an agency cannot move to another subscription",
                {"field": field},
            )
        setattr(agency, field, wanted)
        changed = True
    if changed:
        outbox.request_billing_sync(session, agency.id)


def sign_baa(session: Session, agency_id: str, signed_at: datetime | None) -> AgencyView:
    # Locked: of two concurrent signatures the second waits, then sees the first one's.
    agency = session.get(Agency, agency_id, with_for_update=True, populate_existing=True)
    if agency is None:
        raise NotFound(f"agency {agency_id!r} not found")
    now = utcnow()
    when = signed_at or now
    if when > now + timedelta(minutes=5):
        raise ValidationFailed("signed_at is in the future", {"signed_at": ["in the future"]})
    if agency.baa_signed_at is None:  # signing twice keeps the first signature
        agency.baa_signed_at = when
    return view_agency(session, agency)


def update_settings(session: Session, agency_id: str, data: dict[str, Any]) -> AgencyView:
    agency = session.get(Agency, agency_id, with_for_update=True)
    if agency is None:
        raise NotFound(f"agency {agency_id!r} not found")
    turning_on = data.get("auto_add_seats") is True
    setting_cap = "auto_add_cap" in data and data["auto_add_cap"] is not None
    check_settings_change(agency.baa_signed, turning_on, setting_cap)
    if "auto_add_seats" in data:
        agency.auto_add_seats = data["auto_add_seats"]
    if "auto_add_cap" in data:
        agency.auto_add_cap = data["auto_add_cap"]
    return view_agency(session, agency)


def set_seat_quantity(
    session: Session, agency_id: str, seat_type: str, quantity: int, actor: str
) -> AgencyView:
    agency = get_agency(session, agency_id)
    pools, state = locked_pool_state(session, agency, seat_type)
    change = decide_quantity_change(state, quantity)
    if change.event_type is not None:
        pool = pools[seat_type]
        pool.purchased = quantity
        record_seat_event(
            session, agency_id, change.event_type, seat_type, change.delta, quantity, actor
        )
        outbox.request_billing_sync(session, agency_id)
    return view_agency(session, agency)


def set_trial_seat_limit(session: Session, agency_id: str, seat_limit: int) -> AgencyView:
    agency = session.get(Agency, agency_id, with_for_update=True)
    if agency is None:
        raise NotFound(f"agency {agency_id!r} not found")
    agency.trial_seat_limit = seat_limit
    return view_agency(session, agency)


def request_reconcile(session: Session, agency_id: str) -> BillingOutbox:
    get_agency(session, agency_id)
    return outbox.request_reconcile(session, agency_id)


def list_seat_events(
    session: Session, agency_id: str, limit: int, before: int | None
) -> tuple[list[SeatEvent], int | None]:
    """Newest first; the cursor is the id of the last event returned."""
    get_agency(session, agency_id)
    query = select(SeatEvent).where(SeatEvent.agency_id == agency_id)
    if before is not None:
        query = query.where(SeatEvent.id < before)
    rows = list(session.scalars(query.order_by(SeatEvent.id.desc()).limit(limit + 1)))
    next_cursor = rows[limit - 1].id if len(rows) > limit else None
    return rows[:limit], next_cursor


def record_seat_event(
    session: Session,
    agency_id: str,
    event_type: SeatEventType,
    seat_type: str,
    delta: int,
    purchased_after: int,
    actor: str,
    member_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> SeatEvent:
    """One row of the seat ledger (the `seat_events` table), the only way one is written."""
    event = SeatEvent(
        agency_id=agency_id,
        type=event_type,
        seat_type=seat_type,
        delta=delta,
        purchased_after=purchased_after,
        member_id=member_id,
        actor=actor,
        detail=detail or {},
    )
    session.add(event)
    return event
