"""Locking an agency's seat pools and reading the state a decision needs.

Lock order, everywhere: member row, then invite rows, then the agency's seat
pools (all of them, sorted by seat type), then the billing outbox row. A
single order means two transactions can wait on each other but never deadlock.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seatsvc.db import for_update
from seatsvc.models import Agency, Member, SeatPool
from seatsvc.seat_rules import PoolState
from seatsvc.types import SEAT_HOLDING_STATUSES

# The agency columns a seat decision reads (see pool_state): re-read after the lock,
# and nothing else (the pools were just loaded by the lock itself).
DECISION_RULES = (
    "baa_signed_at",
    "auto_add_seats",
    "auto_add_cap",
    "billing_status",
    "trial_requested",
    "trial_seat_limit",
)


def lock_pools(session: Session, agency_id: str) -> dict[str, SeatPool]:
    """SELECT ... FOR UPDATE every pool of the agency (SQLite: BEGIN IMMEDIATE did it)."""
    query = select(SeatPool).where(SeatPool.agency_id == agency_id).order_by(SeatPool.seat_type)
    rows = session.scalars(for_update(query)).all()
    return {pool.seat_type: pool for pool in rows}


def seats_used(session: Session, agency_id: str) -> dict[str, int]:
    """Members holding a seat, per seat type. Derived, never stored, so it cannot drift."""
    rows = session.execute(
        select(Member.seat_type, func.count())
        .where(Member.agency_id == agency_id, Member.status.in_(SEAT_HOLDING_STATUSES))
        .group_by(Member.seat_type)
    ).all()
    return {seat_type: int(count) for seat_type, count in rows}


def pool_state(
    session: Session, agency: Agency, pools: dict[str, SeatPool], seat_type: str
) -> PoolState:
    """Read after `lock_pools`, so the count sees every committed seat holder."""
    used = seats_used(session, agency.id).get(seat_type, 0)
    return PoolState(
        purchased=pools[seat_type].purchased,
        used=used,
        total_purchased=sum(pool.purchased for pool in pools.values()),
        baa_signed=agency.baa_signed,
        auto_add=agency.auto_add_seats,
        auto_add_cap=agency.auto_add_cap,
        billing_status=agency.billing_status,
        in_trial=agency.in_trial,
        trial_seat_limit=agency.trial_seat_limit,
    )


def locked_pool_state(
    session: Session, agency: Agency, seat_type: str
) -> tuple[dict[str, SeatPool], PoolState]:
    pools = lock_pools(session, agency.id)
    # Re-read the agency's rules after the lock: a request that waited behind an admin
    # turning Auto-Add off (or lowering its cap) must obey the new setting.
    session.refresh(agency, attribute_names=DECISION_RULES)
    return pools, pool_state(session, agency, pools, seat_type)
