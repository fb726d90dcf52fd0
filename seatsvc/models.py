"""The schema, as typed SQLAlchemy 2 models. Alembic migrations build exactly this."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapped, mapped_column, relationship

from seatsvc.db import Base
from seatsvc.types import (
    BillingStatus,
    MemberStatus,
    NotificationStatus,
    OutboxStatus,
    SeatType,
    StripeEventStatus,
)

ID_LENGTH = 64
PAYMENT_METHOD_FIELDS = ("brand", "last4", "exp_month", "exp_year")


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on PostgreSQL and SQLite alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# SQLite only auto-increments an INTEGER PRIMARY KEY.
AutoId = BigInteger().with_variant(Integer(), "sqlite")


class Agency(Base):
    __tablename__ = "agencies"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    admin_emails: Mapped[list[str]] = mapped_column(JSON)
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    trial_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    baa_signed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    auto_add_seats: Mapped[bool] = mapped_column(Boolean, default=False)
    auto_add_cap: Mapped[int | None] = mapped_column(Integer)
    billing_status: Mapped[str] = mapped_column(String(16), default=BillingStatus.PROVISIONING)
    # Why billing needs an admin's attention (a declined card, ...); null when fine.
    billing_attention: Mapped[str | None] = mapped_column(String(64))
    trial_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    trial_seat_limit: Mapped[int] = mapped_column(Integer, default=1)
    # The customer's default card for invoices, as Stripe last reported it:
    # {"id", "brand", "last4", "exp_month", "exp_year"}; null when none.
    payment_method: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    pools: Mapped[list[SeatPool]] = relationship(
        back_populates="agency", order_by="SeatPool.seat_type"
    )

    @property
    def baa_signed(self) -> bool:
        return self.baa_signed_at is not None

    @property
    def payment_method_summary(self) -> dict[str, Any] | None:
        """What the API shows of the card: brand, last4 and expiry, never its id."""
        if not self.payment_method:
            return None
        return {key: self.payment_method.get(key) for key in PAYMENT_METHOD_FIELDS}

    @property
    def in_trial(self) -> bool:
        if self.billing_status == BillingStatus.TRIALING:
            return True
        return self.billing_status == BillingStatus.PROVISIONING and self.trial_requested

    def pool(self, seat_type: str) -> SeatPool:
        for pool in self.pools:
            if pool.seat_type == seat_type:
                return pool
        raise KeyError(seat_type)


class SeatPool(Base):
    """Seats of one type for one agency: the row every seat decision locks."""

    __tablename__ = "seat_pools"
    __table_args__ = (
        CheckConstraint("purchased >= 0", name="purchased_not_negative"),
        CheckConstraint("seat_type IN ('base', 'voice')", name="seat_type_known"),
    )

    agency_id: Mapped[str] = mapped_column(
        ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True
    )
    seat_type: Mapped[str] = mapped_column(String(16), primary_key=True)
    purchased: Mapped[int] = mapped_column(Integer, default=0)
    # The quantity Stripe last confirmed; null until the first sync or link.
    billed: Mapped[int | None] = mapped_column(Integer)
    billed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    stripe_item_id: Mapped[str | None] = mapped_column(String(255))

    agency: Mapped[Agency] = relationship(back_populates="pools")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        Index("ix_members_agency_seat_status", "agency_id", "seat_type", "status"),
        CheckConstraint(
            "status IN ('pending_login', 'invited', 'active', 'blocked', 'removed')",
            name="status_known",
        ),
    )

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    seat_type: Mapped[str] = mapped_column(String(16), default=SeatType.BASE)
    status: Mapped[str] = mapped_column(String(16), default=MemberStatus.PENDING_LOGIN)
    source: Mapped[str] = mapped_column(String(16))
    blocked_reason: Mapped[str | None] = mapped_column(String(32))
    # Bumped on every status change: makes each notification's dedupe key unique per cause.
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Invite(Base):
    """A single-use accept link. Only the token's hash is stored."""

    __tablename__ = "invites"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    member_id: Mapped[str] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SeatEvent(Base):
    """The seat ledger: append-only, newest first by id."""

    __tablename__ = "seat_events"
    __table_args__ = (Index("ix_seat_events_agency_id_id", "agency_id", "id"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    type: Mapped[str] = mapped_column(String(32))
    seat_type: Mapped[str] = mapped_column(String(16))
    delta: Mapped[int] = mapped_column(Integer)
    purchased_after: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class BillingOutbox(Base):
    """One row per agency: Stripe must converge to the agency's purchased seats.

    Every seat change bumps `desired_version` in the same transaction as the
    change; the billing worker syncs absolute quantities and records the
    version it reached, so many changes coalesce into one Stripe call.
    """

    __tablename__ = "billing_outbox"

    agency_id: Mapped[str] = mapped_column(
        ForeignKey("agencies.id", ondelete="CASCADE"), primary_key=True
    )
    desired_version: Mapped[int] = mapped_column(Integer, default=1)
    synced_version: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16), default=OutboxStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    reconcile_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the oldest change not yet in Stripe was made (null when in sync): bounds the debounce.
    first_pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Quantity updates sent in the current one-hour window (seatsvc.billing.limits).
    window_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    window_updates: Mapped[int] = mapped_column(Integer, default=0)
    # Prorations are waiting in Stripe for the agency's next proration invoice.
    invoice_needed: Mapped[bool] = mapped_column(Boolean, default=False)
    invoice_day: Mapped[str | None] = mapped_column(String(10))
    invoices_today: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Notification(Base):
    """An email owed to someone, unique per cause so it is sent once."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    agency_id: Mapped[str] = mapped_column(
        ForeignKey("agencies.id", ondelete="CASCADE"), index=True
    )
    member_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=NotificationStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When a notifier worker claimed the row (status `sending`); the claim is a
    # lease: past it, the worker is presumed dead and another may take over.
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class StripeEvent(Base):
    """A verified Stripe webhook event, stored once under its id, with its outcome.

    Stored before it is handled (Stripe only needs to hear 2xx once it is durable),
    so a lost job or a failed handler can be re-run from here (`flask stripe events
    reprocess`). `agency_id` is filled in by the handler and is not a foreign key:
    events about agencies we do not (or no longer) know are kept too.
    """

    __tablename__ = "stripe_events"
    __table_args__ = (
        Index("ix_stripe_events_status_received_at", "status", "received_at"),
        Index("ix_stripe_events_agency_id_created", "agency_id", "created"),
    )

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    # Stripe's own `created` (when the event happened, not when it reached us).
    created: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    object_id: Mapped[str | None] = mapped_column(String(255))
    agency_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=StripeEventStatus.RECEIVED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PlanUpgrade(Base):
    """An agency's request to become paying with these seats (POST …/upgrade).

    `awaiting_payment_method` until the Checkout Session it made completes, then
    `ready` (the seats are purchased in the ledger, Stripe must end the trial and
    charge), `done` once Stripe confirmed; `superseded` when a newer request replaced
    it before it was ready, `expired` when its Checkout Session expired unused.
    """

    __tablename__ = "plan_upgrades"
    __table_args__ = (Index("ix_plan_upgrades_agency_id_status", "agency_id", "status"),)

    id: Mapped[int] = mapped_column(AutoId, primary_key=True, autoincrement=True)
    agency_id: Mapped[str] = mapped_column(ForeignKey("agencies.id", ondelete="CASCADE"))
    base: Mapped[int] = mapped_column(Integer)
    voice: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(24))
    # SHA-256 of the request body: a repeated call finds the same upgrade.
    request_key: Mapped[str] = mapped_column(String(64))
    checkout_session_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    checkout_url: Mapped[str | None] = mapped_column(Text)
    checkout_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first invoice Stripe charged for it (the confirmation email shows it).
    invoice_id: Mapped[str | None] = mapped_column(String(255))
    amount_paid: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str | None] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
