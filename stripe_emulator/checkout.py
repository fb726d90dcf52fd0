"""Checkout Sessions in `setup` mode, SetupIntents and customer-portal sessions.

Only the part of Checkout a billing service needs to collect payment details: a
setup-mode session for an existing customer (https://docs.stripe.com/payments/
save-and-reuse?platform=checkout). Creating one creates its SetupIntent
(`requires_payment_method`); completing it (the local page, or the control API)
attaches the test card to the customer, succeeds the SetupIntent and completes the
session, emitting what Stripe emits: `payment_method.attached`,
`setup_intent.succeeded`, `checkout.session.completed`. As on Stripe, a setup-mode
session does not make the card anybody's default: that is the integration's job.
"""

from __future__ import annotations

from typing import Any

from stripe_emulator import errors
from stripe_emulator.context import Ctx
from stripe_emulator.payment_methods import attach_payment_method
from stripe_emulator.shapes import metadata_of
from stripe_emulator.wire import JSONDict, as_int, new_id

SESSION_TTL = 24 * 3600  # Stripe's default `expires_at`: 24 hours after creation
MIN_TTL, MAX_TTL = 30 * 60, 24 * 3600  # the range Stripe accepts for `expires_at`
_ADDRESS = {
    "city": None,
    "country": None,
    "line1": None,
    "line2": None,
    "postal_code": None,
    "state": None,
}


def setup_intent(customer_id: str | None, metadata: JSONDict, now: int) -> JSONDict:
    seti_id = new_id("seti")
    return {
        "id": seti_id,
        "object": "setup_intent",
        "application": None,
        "automatic_payment_methods": None,
        "cancellation_reason": None,
        "client_secret": f"{seti_id}_secret_{new_id('x', 24)[2:]}",
        "created": now,
        "customer": customer_id,
        "description": None,
        "excluded_payment_method_types": None,
        "flow_directions": None,
        "last_setup_error": None,
        "latest_attempt": None,
        "livemode": False,
        "mandate": None,
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {"card": {"mandate_options": None, "network": None,
                                            "request_three_d_secure": "automatic"}},
        "payment_method_types": ["card"],
        "single_use_mandate": None,
        "status": "requires_payment_method",
        "usage": "off_session",
    }  # fmt: skip


def checkout_session(
    params: dict[str, Any], customer_id: str, seti_id: str, now: int, base_url: str
) -> JSONDict:
    cs_id = "cs_test_" + new_id("x", 56)[2:]
    expires_at = as_int(params.get("expires_at")) or now + SESSION_TTL
    return {
        "id": cs_id,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": None,
        "amount_total": None,
        "automatic_tax": {"enabled": False, "liability": None, "provider": None, "status": None},
        "billing_address_collection": params.get("billing_address_collection"),
        "cancel_url": params.get("cancel_url"),
        "client_reference_id": params.get("client_reference_id"),
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": now,
        "currency": params.get("currency"),
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {"after_submit": None, "shipping_address": None, "submit": None,
                        "terms_of_service_acceptance": None},
        "customer": customer_id,
        "customer_account": None,
        "customer_creation": None,
        "customer_details": None,
        "customer_email": None,
        "discounts": None,
        "expires_at": expires_at,
        "integration_identifier": None,
        "invoice": None,
        "invoice_creation": None,
        "livemode": False,
        "locale": params.get("locale"),
        "managed_payments": None,
        "metadata": metadata_of(params),
        "mode": "setup",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "no_payment_required",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": seti_id,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": "open",
        "submit_type": None,
        "subscription": None,
        "success_url": params.get("success_url"),
        "total_details": None,
        "ui_mode": "hosted",
        "url": f"{base_url}/checkout/{cs_id}",
        "wallet_options": None,
    }  # fmt: skip


def portal_session(customer_id: str, return_url: str | None, now: int, base_url: str) -> JSONDict:
    bps_id = new_id("bps")
    return {
        "id": bps_id,
        "object": "billing_portal.session",
        "configuration": "bpc_emulator_default",
        "created": now,
        "customer": customer_id,
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": None,
        "on_behalf_of": None,
        "return_url": return_url,
        "url": f"{base_url}/portal/{bps_id}",
    }


def create_session(ctx: Ctx, params: dict[str, Any], base_url: str) -> JSONDict:
    """POST /v1/checkout/sessions — `mode=setup` with an existing `customer` only."""
    if params.get("mode") != "setup":
        raise errors.invalid_request(
            "The emulator's Checkout supports `mode=setup` only.", param="mode"
        )
    if not params.get("customer"):
        raise errors.missing_parameter("customer")
    customer = ctx.store.get(str(params["customer"]), "customer", "customer")
    if not params.get("currency") and not params.get("payment_method_types"):
        # Dynamic payment methods need a currency in setup mode (Stripe's setup-mode guide).
        raise errors.missing_parameter("currency")
    if params.get("ui_mode", "hosted") == "hosted" and not params.get("success_url"):
        raise errors.missing_parameter("success_url")
    now = ctx.now
    expires_at = as_int(params.get("expires_at"))
    if expires_at is not None and not MIN_TTL <= expires_at - now <= MAX_TTL:
        raise errors.invalid_request(
            "The `expires_at` timestamp must be between 30 minutes and 24 hours from now.",
            param="expires_at",
        )
    data = params.get("setup_intent_data") or {}
    seti = ctx.store.add(setup_intent(customer["id"], metadata_of(data), now))
    ctx.emit("setup_intent.created", seti)
    return ctx.store.add(checkout_session(params, customer["id"], seti["id"], now, base_url))


def expire_if_due(ctx: Ctx, session: JSONDict) -> None:
    if session["status"] == "open" and ctx.now >= int(session["expires_at"]):
        expire(ctx, session)


def expire(ctx: Ctx, session: JSONDict) -> None:
    if session["status"] != "open":
        raise errors.invalid_request(
            f'Only Checkout Sessions with a status in ["open"] can be expired. This Checkout '
            f'Session has a status of "{session["status"]}".'
        )
    session["status"] = "expired"
    session["url"] = None
    ctx.emit("checkout.session.expired", session)


def complete(ctx: Ctx, session: JSONDict, card: str) -> JSONDict:
    """The customer saved `card` (a test token such as `pm_card_visa`) on the page."""
    expire_if_due(ctx, session)
    if session["status"] != "open":
        raise errors.invalid_request(f"This Checkout Session is {session['status']}.")
    customer = ctx.store.get(str(session["customer"]), "customer", "customer")
    seti = ctx.store.get(str(session["setup_intent"]), "setup_intent")
    try:
        pm = attach_payment_method(ctx, card, customer)  # a declined card fails here
    except errors.StripeError as failure:
        seti["last_setup_error"] = failure.body().get("error")
        ctx.emit("setup_intent.setup_failed", seti)
        raise
    ctx.emit("payment_method.attached", pm)
    seti["payment_method"] = pm["id"]
    seti["status"] = "succeeded"
    seti["last_setup_error"] = None
    ctx.emit("setup_intent.succeeded", seti)
    session["status"] = "complete"
    session["url"] = None
    session["customer_details"] = {
        "address": dict(_ADDRESS),
        "business_name": None,
        "email": customer.get("email"),
        "individual_name": None,
        "name": customer.get("name"),
        "phone": None,
        "tax_exempt": "none",
        "tax_ids": [],
    }
    ctx.emit("checkout.session.completed", session)
    return session


def success_url(session: JSONDict) -> str:
    return str(session.get("success_url") or "").replace("{CHECKOUT_SESSION_ID}", session["id"])
