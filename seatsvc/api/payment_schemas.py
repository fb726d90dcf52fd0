"""Schemas of the payment-details and upgrade endpoints (API.md "Payment details and plan")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from marshmallow import Schema, ValidationError, fields, validate, validates

from seatsvc.schemas import MAX_SEAT_QUANTITY, RequestSchema

MAX_URL_LENGTH = 2000  # what browsers reliably keep; Stripe's own URL fields take 5000


class ReturnUrl(fields.String):
    """Where Stripe sends the admin back: an absolute http(s) URL with a host, bounded."""

    def __init__(self, *, required: bool = True) -> None:
        super().__init__(
            required=required,
            validate=[
                validate.Length(1, MAX_URL_LENGTH),
                validate.URL(schemes={"http", "https"}, require_tld=False),
            ],
        )

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in text):
            raise ValidationError("no spaces or control characters in a URL")
        if not urlsplit(text).hostname:
            raise ValidationError("not an absolute URL")
        return text


class ReturnUrlSchema(RequestSchema):
    return_url = ReturnUrl(required=True)


class UpgradeSeatsSchema(RequestSchema):
    base = fields.Integer(strict=True, required=True, validate=validate.Range(0, MAX_SEAT_QUANTITY))
    voice = fields.Integer(
        strict=True, required=True, validate=validate.Range(0, MAX_SEAT_QUANTITY)
    )


class UpgradeSchema(RequestSchema):
    seats = fields.Nested(UpgradeSeatsSchema, required=True)
    return_url = ReturnUrl(required=True)

    @validates("seats")
    def _at_least_one(self, value: dict[str, int], **_: object) -> None:
        # (Also called after a nested field failed: count what loaded.)
        if value.get("base", 1) + value.get("voice", 1) < 1:
            raise ValidationError("a paid plan has at least one seat")


# ---- responses ----------------------------------------------------------------


class PaymentSetupSchema(Schema):
    url = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)


class PortalSchema(Schema):
    url = fields.String(required=True)


class UpgradeCheckoutSchema(Schema):
    """202: the upgrade waits for payment details entered at `checkout_url`."""

    checkout_url = fields.String(required=True)
    expires_at = fields.AwareDateTime(required=True)
