"""Closed vocabularies shared by the ledger, the models and the schemas."""

from __future__ import annotations

from enum import StrEnum


class SeatType(StrEnum):
    BASE = "base"
    VOICE = "voice"


class MemberStatus(StrEnum):
    PENDING_LOGIN = "pending_login"  # auto-joined, holds no seat
    INVITED = "invited"  # holds a seat
    ACTIVE = "active"  # holds a seat
    BLOCKED = "blocked"  # holds no seat
    REMOVED = "removed"  # holds no seat


SEAT_HOLDING_STATUSES = frozenset({MemberStatus.INVITED, MemberStatus.ACTIVE})


class MemberSource(StrEnum):
    AUTO_JOIN = "auto_join"
    INVITE = "invite"


class BillingStatus(StrEnum):
    PROVISIONING = "provisioning"
    TRIALING = "trialing"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELED = "canceled"
    UNPAID = "unpaid"
    PAUSED = "paused"  # a trial ended without payment details (Stripe's `paused`)


# A subscription in these states cannot give anyone a new seat.
INACTIVE_BILLING_STATUSES = frozenset(
    {BillingStatus.CANCELED, BillingStatus.UNPAID, BillingStatus.PAUSED}
)


class SeatOutcome(StrEnum):
    ACTIVATED = "activated"
    AUTO_ADDED = "auto_added"
    BLOCKED = "blocked"
    ALREADY_ACTIVE = "already_active"


class BlockReason(StrEnum):
    NO_CAPACITY = "no_capacity"
    AUTO_ADD_CAP_REACHED = "auto_add_cap_reached"
    TRIAL_LIMIT = "trial_limit"
    SUBSCRIPTION_INACTIVE = "subscription_inactive"


class SeatEventType(StrEnum):
    PURCHASED = "purchased"
    REDUCED = "reduced"
    AUTO_ADDED = "auto_added"
    EXTERNAL_CHANGE = "external_change"
    BILLING_SYNCED = "billing_synced"
    BILLING_FAILED = "billing_failed"


class SyncState(StrEnum):
    IN_SYNC = "in_sync"
    PENDING = "pending"
    FAILED = "failed"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class NotificationKind(StrEnum):
    SEAT_AUTO_ADDED = "seat_auto_added"
    MEMBER_BLOCKED = "member_blocked"
    INVITE = "invite"
    PAYMENT_FAILED = "payment_failed"
    OVER_CAPACITY = "over_capacity"
    TRIAL_WILL_END = "trial_will_end"
    UPGRADE_CONFIRMED = "upgrade_confirmed"


class NotificationStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SENDING = "sending"  # claimed by a notifier worker (see Notification.claimed_at)
    SKIPPED = "skipped"  # moot by the time it was sent (e.g. the invite was replaced)


class StripeEventStatus(StrEnum):
    RECEIVED = "received"  # stored, not yet handled
    PROCESSED = "processed"
    IGNORED = "ignored"  # a type we do not use, a customer we do not know, a stale event
    FAILED = "failed"  # the handler raised; rq retries it, ops can reprocess it
