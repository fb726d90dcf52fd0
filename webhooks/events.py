"""The `stripe_events` rows: stored once under Stripe's event id, whatever number of
deliveries race, with what became of each. Takes a Session; never commits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from seatsvc.db import insert_once
from seatsvc.models import StripeEvent, utcnow
from seatsvc.types import StripeEventStatus

FINISHED = (StripeEventStatus.PROCESSED, StripeEventStatus.IGNORED)


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
    return insert_once(session, StripeEvent, values, "id") is not None


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
