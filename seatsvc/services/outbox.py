"""Outbox rows, written in the same transaction as the change they announce.

After commit, the unit of work hands `session.info["outbox"]` to the
dispatcher (which enqueues RQ jobs); if Redis is down the rows stay pending
and the periodic sweep picks them up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from seatsvc.db import for_update, insert_once
from seatsvc.models import BillingOutbox, Notification, utcnow
from seatsvc.types import NotificationKind, NotificationStatus, OutboxStatus

# How long a notifier's claim on a row lasts: far longer than a send job may run, so a
# live worker never loses its claim; a row claimed longer ago belongs to a dead one.
CLAIM_LEASE = timedelta(minutes=10)


@dataclass
class OutboxTouched:
    """What this transaction asked the workers to do, for the after-commit dispatch."""

    billing_agency_ids: set[str] = field(default_factory=set)
    # Ids of the notification rows this transaction created (a duplicate cause adds none).
    notification_ids: set[int] = field(default_factory=set)
    reconcile_agency_ids: set[str] = field(default_factory=set)


def touched(session: Session) -> OutboxTouched:
    found = session.info.get("outbox")
    if found is None:
        found = session.info["outbox"] = OutboxTouched()
    assert isinstance(found, OutboxTouched)
    return found


def create_billing_outbox(session: Session, agency_id: str) -> None:
    session.add(BillingOutbox(agency_id=agency_id, desired_version=1, first_pending_at=utcnow()))
    touched(session).billing_agency_ids.add(agency_id)


def request_billing_sync(session: Session, agency_id: str) -> None:
    """The agency's desired Stripe state changed: one more version to converge to."""
    now = utcnow()
    session.execute(
        update(BillingOutbox)
        .where(BillingOutbox.agency_id == agency_id)
        .values(
            desired_version=BillingOutbox.desired_version + 1,
            status=OutboxStatus.PENDING,
            first_pending_at=func.coalesce(BillingOutbox.first_pending_at, now),
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    touched(session).billing_agency_ids.add(agency_id)


def request_reconcile(session: Session, agency_id: str) -> BillingOutbox:
    row = session.execute(
        for_update(select(BillingOutbox).where(BillingOutbox.agency_id == agency_id))
    ).scalar_one()
    row.reconcile_requested_at = utcnow()
    touched(session).reconcile_agency_ids.add(agency_id)
    return row


def notify(
    session: Session,
    kind: NotificationKind,
    dedupe_key: str,
    agency_id: str,
    member_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> None:
    """Owe one email per cause: a second row with the same key is silently dropped."""
    values = {
        "dedupe_key": dedupe_key,
        "kind": kind.value,
        "agency_id": agency_id,
        "member_id": member_id,
        "payload": payload or {},
        "created_at": utcnow(),
    }
    created = insert_once(session, Notification, values, "dedupe_key")
    if created is not None:
        touched(session).notification_ids.add(created)


def notifications_due(session: Session, older_than: timedelta, limit: int) -> list[int]:
    """Rows nobody is working on: pending for a while, or claimed by a dead worker."""
    now = utcnow()
    query = (
        select(Notification.id)
        .where(
            or_(
                and_(
                    Notification.status == NotificationStatus.PENDING,
                    Notification.created_at < now - older_than,
                ),
                and_(
                    Notification.status == NotificationStatus.SENDING,
                    Notification.claimed_at < now - CLAIM_LEASE,
                ),
            )
        )
        .order_by(Notification.id)
        .limit(limit)
    )
    return list(session.scalars(query))
