"""Reading ids out of a Stripe event's object, whichever form Stripe sent (id or expanded)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def text_or_none(value: Any) -> str | None:
    return str(value) if value else None


def customer_id(obj: Mapping[str, Any]) -> str | None:
    customer = obj.get("customer")
    if isinstance(customer, Mapping):
        return text_or_none(customer.get("id"))
    return text_or_none(customer)


def invoice_subscription_id(obj: Mapping[str, Any]) -> str | None:
    """`parent.subscription_details.subscription` (API 2025+), else the older `subscription`."""
    parent = obj.get("parent") or {}
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    if isinstance(details, Mapping) and details.get("subscription"):
        return text_or_none(details["subscription"])
    return text_or_none(obj.get("subscription"))
