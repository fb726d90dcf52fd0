"""Stripe-shaped JSON objects. Each builder returns every top-level key that Stripe's own
fixture (`stripe/openapi` fixtures3.json) has for that resource; emulator-private
bookkeeping lives under keys starting with `_`, which never leave the server."""

from __future__ import annotations

from typing import Any

from stripe_emulator.wire import JSONDict, as_bool, as_int, new_id

ADDRESS_NULL: JSONDict = {
    "city": None,
    "country": None,
    "line1": None,
    "line2": None,
    "postal_code": None,
    "state": None,
}


def metadata_of(params: dict[str, Any], current: dict[str, Any] | None = None) -> JSONDict:
    """Stripe merges metadata on update; an empty value unsets a key, `metadata=""` clears."""
    merged: JSONDict = dict(current or {})
    given = params.get("metadata")
    if given == "":
        return {}
    if isinstance(given, dict):
        for key, value in given.items():
            if value == "":
                merged.pop(key, None)
            else:
                merged[key] = str(value)
    return merged


def customer(params: dict[str, Any], now: int) -> JSONDict:
    cid = new_id("cus", 14)
    settings = params.get("invoice_settings") or {}
    return {
        "id": cid,
        "object": "customer",
        "address": params.get("address") or None,
        "balance": as_int(params.get("balance"), 0),
        "created": now,
        "currency": None,
        "default_source": None,
        "delinquent": False,
        "description": params.get("description") or None,
        "discount": None,
        "email": params.get("email") or None,
        "invoice_prefix": cid[4:11].upper(),
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": settings.get("default_payment_method") or None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": metadata_of(params),
        "name": params.get("name") or None,
        "next_invoice_sequence": 1,
        "phone": params.get("phone") or None,
        "preferred_locales": list(params.get("preferred_locales") or []),
        "shipping": None,
        "tax_exempt": params.get("tax_exempt") or "none",
        "test_clock": None,
    }


def product(params: dict[str, Any], now: int) -> JSONDict:
    return {
        "id": params.get("id") or new_id("prod", 14),
        "object": "product",
        "active": as_bool(params.get("active"), True),
        "created": now,
        "default_price": None,
        "description": params.get("description") or None,
        "images": list(params.get("images") or []),
        "livemode": False,
        "marketing_features": [],
        "metadata": metadata_of(params),
        "name": params.get("name"),
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": params.get("statement_descriptor") or None,
        "tax_code": None,
        "type": "service",
        "unit_label": params.get("unit_label") or None,
        "updated": now,
        "url": None,
    }


def price(params: dict[str, Any], product_id: str, now: int) -> JSONDict:
    recurring_in = params.get("recurring")
    recurring = None
    if isinstance(recurring_in, dict):
        recurring = {
            "interval": recurring_in.get("interval", "month"),
            "interval_count": as_int(recurring_in.get("interval_count"), 1),
            "meter": None,
            "trial_period_days": as_int(recurring_in.get("trial_period_days")),
            "usage_type": recurring_in.get("usage_type", "licensed"),
        }
    unit_amount = as_int(params.get("unit_amount"))
    if unit_amount is None and params.get("unit_amount_decimal"):
        unit_amount = int(float(str(params["unit_amount_decimal"])))
    return {
        "id": new_id("price"),
        "object": "price",
        "active": as_bool(params.get("active"), True),
        "billing_scheme": params.get("billing_scheme") or "per_unit",
        "created": now,
        "currency": str(params.get("currency", "usd")).lower(),
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": params.get("lookup_key") or None,
        "metadata": metadata_of(params),
        "nickname": params.get("nickname") or None,
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": params.get("tax_behavior") or "unspecified",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring" if recurring else "one_time",
        "unit_amount": unit_amount,
        "unit_amount_decimal": None if unit_amount is None else str(unit_amount),
    }


def plan_of(price_obj: JSONDict) -> JSONDict:
    """The legacy `plan` view of a recurring price, still embedded in subscription items."""
    rec = price_obj.get("recurring") or {}
    return {
        "id": price_obj["id"],
        "object": "plan",
        "active": price_obj["active"],
        "amount": price_obj["unit_amount"],
        "amount_decimal": price_obj["unit_amount_decimal"],
        "billing_scheme": price_obj["billing_scheme"],
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "interval": rec.get("interval", "month"),
        "interval_count": rec.get("interval_count", 1),
        "livemode": False,
        "metadata": price_obj["metadata"],
        "meter": None,
        "nickname": price_obj["nickname"],
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": rec.get("trial_period_days"),
        "usage_type": rec.get("usage_type", "licensed"),
    }


# Stripe's test card tokens (https://docs.stripe.com/testing#cards): how each behaves.
TEST_CARDS: dict[str, tuple[str, str]] = {
    "pm_card_visa": ("visa", "4242"),
    "pm_card_mastercard": ("mastercard", "4444"),
    "pm_card_amex": ("amex", "8431"),
    "pm_card_chargeDeclined": ("visa", "0002"),
    "pm_card_visa_chargeDeclined": ("visa", "0002"),
    "pm_card_chargeDeclinedInsufficientFunds": ("visa", "9995"),
    "pm_card_chargeCustomerFail": ("visa", "0341"),
}
DECLINE_ON_ATTACH = {
    "pm_card_chargeDeclined": "generic_decline",
    "pm_card_visa_chargeDeclined": "generic_decline",
    "pm_card_chargeDeclinedInsufficientFunds": "insufficient_funds",
}
DECLINE_ON_CHARGE = {"pm_card_chargeCustomerFail": "generic_decline", **DECLINE_ON_ATTACH}


def payment_method(token: str, now: int) -> JSONDict:
    brand, last4 = TEST_CARDS.get(token, ("visa", "4242"))
    return {
        "id": new_id("pm"),
        "object": "payment_method",
        "allow_redisplay": "unspecified",
        "billing_details": {
            "address": dict(ADDRESS_NULL),
            "email": None,
            "name": None,
            "phone": None,
            "tax_id": None,
        },
        "card": {
            "brand": brand,
            "checks": {
                "address_line1_check": None,
                "address_postal_code_check": None,
                "cvc_check": "pass",
            },
            "country": "US",
            "display_brand": brand,
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": new_id("fp", 16)[3:],
            "funding": "credit",
            "generated_from": None,
            "last4": last4,
            "networks": {"available": [brand], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        },
        "created": now,
        "customer": None,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": "card",
        "_token": token,
    }


def subscription_item(sub_id: str, price_id: str, quantity: int, now: int) -> JSONDict:
    return {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": now,
        "current_period_end": 0,
        "current_period_start": 0,
        "discounts": [],
        "metadata": {},
        "plan": None,  # filled from the price at render time
        "price": price_id,
        "quantity": quantity,
        "subscription": sub_id,
        "tax_rates": [],
    }


def subscription(params: dict[str, Any], customer_id: str, currency: str, now: int) -> JSONDict:
    return {
        "id": new_id("sub"),
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": {"disabled_reason": None, "enabled": False, "liability": None},
        "billing_cycle_anchor": now,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic", "flexible": None},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": None,
        "cancel_at_period_end": as_bool(params.get("cancel_at_period_end")),
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": params.get("collection_method") or "charge_automatically",
        "created": now,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "days_until_due": as_int(params.get("days_until_due")),
        "default_payment_method": params.get("default_payment_method") or None,
        "default_source": None,
        "default_tax_rates": [],
        "description": params.get("description") or None,
        "discounts": [],
        "ended_at": None,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": {"type": "self"},
        },
        "items": None,  # rendered from the stored items
        "latest_invoice": None,
        "livemode": False,
        "managed_payments": None,
        "metadata": metadata_of(params),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": now,
        "status": "incomplete",
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {
            "end_behavior": {
                "missing_payment_method": (
                    (params.get("trial_settings") or {}).get("end_behavior") or {}
                ).get("missing_payment_method")
                or "create_invoice"
            }
        },
        "trial_start": None,
        "_item_ids": [],
        "_period_start": now,
        "_period_end": now,
    }
