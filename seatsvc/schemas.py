"""Marshmallow schemas: they validate every request and generate /openapi.json."""

from __future__ import annotations

from datetime import UTC

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from seatsvc.types import (
    BillingStatus,
    BlockReason,
    MemberSource,
    MemberStatus,
    SeatEventType,
    SeatOutcome,
    SeatType,
    SyncState,
)

ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,64}$"
STRIPE_ID_PATTERN = r"^[A-Za-z0-9_]{1,255}$"
MAX_SEAT_QUANTITY = 10_000
MAX_TRIAL_SEAT_LIMIT = 1_000

_id = validate.Regexp(ID_PATTERN, error="1 to 64 characters of [A-Za-z0-9_.:-]")
_stripe_id = validate.Regexp(STRIPE_ID_PATTERN, error="not a Stripe id")
# PostgreSQL text cannot hold NUL, and no name needs control characters.
_no_control_chars = validate.Regexp(
    r"^[^\x00-\x1f\x7f]*$", error="control characters are not allowed"
)


def _one_of(enum: type[SeatType | MemberStatus | MemberSource]) -> validate.OneOf:
    return validate.OneOf([member.value for member in enum])


def strict_boolean(**kwargs: object) -> fields.Boolean:
    """JSON true/false only: "yes" or 1 is a caller's bug, not a yes."""
    return fields.Boolean(truthy={True}, falsy={False}, **kwargs)  # type: ignore[arg-type]


class RequestSchema(Schema):
    class Meta:
        unknown = RAISE


class Email(fields.Email):
    def __init__(self, **kwargs: object) -> None:
        super().__init__(validate=validate.Length(max=320), **kwargs)  # type: ignore[arg-type]


# ---- requests ---------------------------------------------------------------


class AgencyUpsertSchema(RequestSchema):
    name = fields.String(required=True, validate=[validate.Length(1, 200), _no_control_chars])
    admin_emails = fields.List(Email(), required=True, validate=validate.Length(1, 20))
    stripe_customer_id = fields.String(validate=_stripe_id, allow_none=True)
    stripe_subscription_id = fields.String(validate=_stripe_id, allow_none=True)
    trial = strict_boolean(load_default=True)

    @validates_schema
    def _subscription_needs_customer(self, data: dict[str, object], **_: object) -> None:
        if data.get("stripe_subscription_id") and not data.get("stripe_customer_id"):
            raise ValidationError(
                "a subscription is linked together with its customer", "stripe_customer_id"
            )


class BaaSchema(RequestSchema):
    signed_at = fields.AwareDateTime(default_timezone=UTC, allow_none=True)


class SettingsSchema(RequestSchema):
    auto_add_seats = strict_boolean()
    auto_add_cap = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(0, MAX_SEAT_QUANTITY)
    )


class SeatQuantitySchema(RequestSchema):
    quantity = fields.Integer(
        strict=True, required=True, validate=validate.Range(0, MAX_SEAT_QUANTITY)
    )


class TrialSchema(RequestSchema):
    seat_limit = fields.Integer(
        strict=True, required=True, validate=validate.Range(1, MAX_TRIAL_SEAT_LIMIT)
    )


class SeatEventsQuerySchema(RequestSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    # Bounded by the id column (64-bit): a larger cursor is a 422, not a database overflow.
    before = fields.Integer(
        load_default=None, validate=validate.Range(1, 2**63 - 1), allow_none=True
    )


class MemberCreateSchema(RequestSchema):
    member_id = fields.String(required=True, validate=_id)
    email = Email(required=True)
    seat_type = fields.String(load_default=SeatType.BASE.value, validate=_one_of(SeatType))
    source = fields.String(required=True, validate=_one_of(MemberSource))


class MembersQuerySchema(RequestSchema):
    status = fields.String(validate=_one_of(MemberStatus))


class AcceptInviteSchema(RequestSchema):
    token = fields.String(required=True, validate=validate.Length(1, 200))


class SeatMoveSchema(RequestSchema):
    seat_type = fields.String(required=True, validate=_one_of(SeatType))


# ---- responses --------------------------------------------------------------


class SeatSummarySchema(Schema):
    purchased = fields.Integer(required=True)
    used = fields.Integer(required=True)
    available = fields.Integer(required=True)
    billed = fields.Integer(allow_none=True, required=True)
    sync = fields.Enum(SyncState, by_value=True, required=True)


class PaymentMethodSchema(Schema):
    brand = fields.String(required=True)
    last4 = fields.String(required=True)
    exp_month = fields.Integer(required=True)
    exp_year = fields.Integer(required=True)


class AgencySchema(Schema):
    id = fields.String(attribute="agency.id", required=True)
    name = fields.String(attribute="agency.name", required=True)
    admin_emails = fields.List(fields.Email(), attribute="agency.admin_emails", required=True)
    stripe_customer_id = fields.String(attribute="agency.stripe_customer_id", allow_none=True)
    stripe_subscription_id = fields.String(
        attribute="agency.stripe_subscription_id", allow_none=True
    )
    baa_signed_at = fields.AwareDateTime(attribute="agency.baa_signed_at", allow_none=True)
    auto_add_seats = fields.Boolean(attribute="agency.auto_add_seats", required=True)
    auto_add_cap = fields.Integer(attribute="agency.auto_add_cap", allow_none=True)
    billing_status = fields.String(
        attribute="agency.billing_status", validate=validate.OneOf(list(BillingStatus))
    )
    billing_attention = fields.String(attribute="agency.billing_attention", allow_none=True)
    trial_ends_at = fields.AwareDateTime(attribute="agency.trial_ends_at", allow_none=True)
    trial_seat_limit = fields.Integer(attribute="agency.trial_seat_limit")
    seats = fields.Dict(keys=fields.String(), values=fields.Nested(SeatSummarySchema))
    created_at = fields.AwareDateTime(attribute="agency.created_at")
    payment_method = fields.Nested(
        PaymentMethodSchema, attribute="agency.payment_method_summary", allow_none=True
    )


class MemberSchema(Schema):
    id = fields.String(required=True)
    agency_id = fields.String(required=True)
    email = fields.Email(required=True)
    seat_type = fields.String(required=True, validate=_one_of(SeatType))
    status = fields.String(required=True, validate=_one_of(MemberStatus))
    source = fields.String(required=True, validate=_one_of(MemberSource))
    created_at = fields.AwareDateTime(required=True)
    activated_at = fields.AwareDateTime(allow_none=True)
    blocked_reason = fields.String(allow_none=True, validate=validate.OneOf(list(BlockReason)))


class MemberListSchema(Schema):
    members = fields.List(fields.Nested(MemberSchema), required=True)


class SeatRequestResultSchema(Schema):
    member = fields.Nested(MemberSchema, required=True)
    outcome = fields.String(required=True, validate=validate.OneOf(list(SeatOutcome)))
    reason = fields.String(allow_none=True, validate=validate.OneOf(list(BlockReason)))


class SeatEventSchema(Schema):
    id = fields.String(required=True)
    at = fields.AwareDateTime(required=True)
    type = fields.String(required=True, validate=validate.OneOf(list(SeatEventType)))
    seat_type = fields.String(required=True)
    delta = fields.Integer(required=True)
    purchased_after = fields.Integer(required=True)
    member_id = fields.String(allow_none=True)
    actor = fields.String(required=True)
    detail = fields.Dict()


class SeatEventsPageSchema(Schema):
    events = fields.List(fields.Nested(SeatEventSchema), required=True)
    next = fields.String(allow_none=True, required=True)


class ReconcileRequestedSchema(Schema):
    agency_id = fields.String(required=True)
    reconcile_requested_at = fields.AwareDateTime(required=True)


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Dict(required=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)


class StatusSchema(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())
