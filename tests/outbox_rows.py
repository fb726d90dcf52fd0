"""Reading the outbox and ledger rows that a request left behind."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from seatsvc.models import BillingOutbox, Invite, Notification, utcnow
from seatsvc.runtime import Runtime
from seatsvc.services.invites import invite_token


def notifications(runtime: Runtime, kind: str | None = None) -> list[Notification]:
    with runtime.db.session() as session:
        query = select(Notification).order_by(Notification.id)
        if kind is not None:
            query = query.where(Notification.kind == kind)
        return list(session.scalars(query))


def billing_row(runtime: Runtime, agency_id: str = "clinic") -> BillingOutbox:
    with runtime.db.session() as session:
        row = session.get(BillingOutbox, agency_id)
        assert row is not None
        return row


def invites_of(runtime: Runtime, member_id: str) -> list[Invite]:
    with runtime.db.session() as session:
        query = select(Invite).where(Invite.member_id == member_id).order_by(Invite.created_at)
        return list(session.scalars(query))


def latest_token(runtime: Runtime, member_id: str) -> str:
    """The one-click token the invite email carries, rebuilt as the notifier does."""
    invite = invites_of(runtime, member_id)[-1]
    return invite_token(runtime.config.secret_key, invite.id)


def expire_invites(runtime: Runtime, member_id: str) -> None:
    with runtime.db.session() as session, session.begin():
        session.execute(
            update(Invite).where(Invite.member_id == member_id).values(expires_at=utcnow())
        )


def set_agency(runtime: Runtime, agency_id: str = "clinic", **values: Any) -> None:
    from seatsvc.models import Agency

    with runtime.db.session() as session, session.begin():
        session.execute(update(Agency).where(Agency.id == agency_id).values(**values))
