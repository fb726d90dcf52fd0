"""Marshmallow schemas: they validate every request and generate /openapi.json."""

from __future__ import annotations

import re
from datetime import UTC
from typing import Any

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
# NUL cannot be stored (PostgreSQL) and a lone surrogate cannot even be encoded (UTF-8):
# either would fail deep in a flush or a hash, so every request string is checked here.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def is_storable_text(value: str) -> bool:
    return _UNSTORABLE.search(value) is None


def check_storable_text(value: str) -> None:
    """Raise a ValidationError for a string no database column or encoder can take."""
    if not is_storable_text(value):
        raise ValidationError("NUL characters and lone surrogates are not allowed")


def _one_of(enum: type[SeatType | MemberStatus | MemberSource]) -> validate.OneOf:
    return validate.OneOf([member.value for member in enum])


class Text(fields.String):
    """A request string: JSON string only, never NUL nor a lone surrogate."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        check_storable_text(text)
        return text


class StrictBoolean(fields.Boolean):
    """JSON true/false only: "yes", 1 or 0 is a caller's bug, not a yes or a no.

    marshmallow's truthy/falsy sets cannot say this: `1 in {True}` holds in Python.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if type(value) is not bool:
            raise self.make_error("invalid", input=value)
        return value


def strict_boolean(**kwargs: Any) -> fields.Boolean:
    return StrictBoolean(**kwargs)


def strict_integer(**kwargs: Any) -> fields.Integer:
    """A JSON integer: not true, 1.0 nor "3" (marshmallow's strict mode refuses those)."""
    return fields.Integer(strict=True, **kwargs)


class RequestSchema(Schema):
    class Meta:
        unknown = RAISE


# RFC 5321 dot-atom local part, ASCII only: smtplib cannot send a non-ASCII local part
# (no SMTPUTF8), and the log redaction (`seatsvc.observability`) matches this alphabet.
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


class Email(fields.Email):
    """An address the notifier can always deliver and the log redaction always catches.

    `local@host.example`: an ASCII dot-atom local part (no quoted forms) and a DNS host
    name. An internationalised domain is kept in its ASCII (IDNA, `xn--`) form, which
    is what SMTP sends; IP literals (`x@[127.0.0.1]`) and bare hosts are refused.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("validate", validate.Length(max=320))  # documents maxLength too
        super().__init__(**kwargs)
        # fields.Email's own regex goes: `deliverable_address` is stricter and says why.
        del self.validators[0]

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        check_storable_text(text)
        return deliverable_address(text)


def deliverable_address(address: str) -> str:
    """The address with an ASCII domain, or a ValidationError saying what is wrong."""
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain:
        raise ValidationError("not an email address (local-part@domain)")
    if len(address) > 320 or len(local) > 64:
        raise ValidationError("too long: at most 64 characters before the @ and 320 in all")
    if not _LOCAL_PART.fullmatch(local):
        raise ValidationError(
            "the part before the @ must be ASCII letters, digits and !#$%&'*+/=?^_`{|}~- "
            "separated by single dots (no quotes, no spaces)"
        )
    if domain.startswith("["):
        raise ValidationError("IP address literals are not accepted: use a host name")
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError as error:
        raise ValidationError("the domain is not a valid host name") from error
    labels = ascii_domain.split(".")
    if (
        len(ascii_domain) > 253
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise ValidationError("the domain is not a valid host name (like clinic.example)")
    return f"{local}@{ascii_domain}"


# ---- requests ---------------------------------------------------------------


class AgencyUpsertSchema(RequestSchema):
    name = Text(required=True, validate=[validate.Length(1, 200), _no_control_chars])
    admin_emails = fields.List(Email(), required=True, validate=validate.Length(1, 20))
    stripe_customer_id = Text(validate=_stripe_id, allow_none=True)
    stripe_subscription_id = Text(validate=_stripe_id, allow_none=True)
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
    auto_add_cap = strict_integer(allow_none=True, validate=validate.Range(0, MAX_SEAT_QUANTITY))


class SeatQuantitySchema(RequestSchema):
    quantity = strict_integer(required=True, validate=validate.Range(0, MAX_SEAT_QUANTITY))


class TrialSchema(RequestSchema):
    seat_limit = strict_integer(required=True, validate=validate.Range(1, MAX_TRIAL_SEAT_LIMIT))


class SeatEventsQuerySchema(RequestSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(1, 200))
    # Bounded by the id column (64-bit): a larger cursor is a 422, not a database overflow.
    before = fields.Integer(
        load_default=None, validate=validate.Range(1, 2**63 - 1), allow_none=True
    )


class MemberCreateSchema(RequestSchema):
    member_id = Text(required=True, validate=_id)
    email = Email(required=True)
    seat_type = Text(load_default=SeatType.BASE.value, validate=_one_of(SeatType))
    source = Text(required=True, validate=_one_of(MemberSource))


class MembersQuerySchema(RequestSchema):
    status = Text(validate=_one_of(MemberStatus))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 500))
    # The `next` of the previous page, passed back as is.
    before = Text(load_default=None, allow_none=True, validate=_id)


class AcceptInviteSchema(RequestSchema):
    token = Text(required=True, validate=validate.Length(1, 200))


class SeatMoveSchema(RequestSchema):
    seat_type = Text(required=True, validate=_one_of(SeatType))


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
    """Oldest first, one page; `next` (null on the last page) goes back as `before`."""

    members = fields.List(fields.Nested(MemberSchema), required=True)
    next = fields.String(allow_none=True, required=True)


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
