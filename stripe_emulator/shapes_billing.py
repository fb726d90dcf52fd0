"""Stripe-shaped invoices, invoice items, invoice line items, events and webhook endpoints."""

from __future__ import annotations

from typing import Any

from stripe_emulator.wire import JSONDict, new_id

API_VERSION = "2026-10-28.endive"  # the version the installed SDK (v16) pins


def invoice_item(
    *,
    customer_id: str,
    amount: int,
    currency: str,
    description: str | None,
    period: tuple[int, int],
    now: int,
    subscription_id: str | None = None,
    subscription_item_id: str | None = None,
    price_id: str | None = None,
    product_id: str | None = None,
    quantity: int = 1,
    proration: bool = False,
    metadata: JSONDict | None = None,
) -> JSONDict:
    parent = None
    if subscription_id:
        parent = {
            "type": "subscription_details",
            "subscription_details": {
                "subscription": subscription_id,
                "subscription_item": subscription_item_id,
            },
        }
    return {
        "id": new_id("ii"),
        "object": "invoiceitem",
        "amount": amount,
        "currency": currency,
        "customer": customer_id,
        "customer_account": None,
        "date": now,
        "description": description,
        "discountable": not proration,
        "discounts": [],
        "invoice": None,
        "livemode": False,
        "metadata": metadata or {},
        "net_amount": amount,
        "parent": parent,
        "period": {"start": period[0], "end": period[1]},
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price_id, "product": product_id},
            "unit_amount_decimal": str(amount // quantity) if quantity else str(amount),
        },
        "proration": proration,
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "tax_rates": [],
        "test_clock": None,
    }


def line_item(
    *,
    invoice_id: str,
    amount: int,
    currency: str,
    description: str | None,
    period: JSONDict,
    quantity: int,
    subscription_id: str | None,
    price_id: str | None,
    product_id: str | None,
    invoice_item_id: str | None = None,
    subscription_item_id: str | None = None,
    proration: bool = False,
) -> JSONDict:
    details = {"proration": proration, "proration_details": {"credited_items": None}}
    if invoice_item_id:
        parent: JSONDict = {
            "type": "invoice_item_details",
            "invoice_item_details": {
                "invoice_item": invoice_item_id,
                "subscription": subscription_id,
                **details,
            },
            "subscription_item_details": None,
        }
    else:
        parent = {
            "type": "subscription_item_details",
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": None,
                "subscription": subscription_id,
                "subscription_item": subscription_item_id,
                **details,
            },
        }
    return {
        "id": new_id("il"),
        "object": "line_item",
        "amount": amount,
        "currency": currency,
        "description": description,
        "discount_amounts": [],
        "discountable": not proration,
        "discounts": [],
        "invoice": invoice_id,
        "livemode": False,
        "metadata": {},
        "parent": parent,
        "period": dict(period),
        "pretax_credit_amounts": [],
        "pricing": {
            "type": "price_details",
            "price_details": {"price": price_id, "product": product_id},
            "unit_amount_decimal": str(amount // quantity) if quantity else str(amount),
        },
        "quantity": quantity,
        "quantity_decimal": str(quantity),
        "subscription": subscription_id,
        "subtotal": amount,
        "taxes": [],
    }


def invoice(
    *,
    customer: JSONDict,
    subscription_id: str | None,
    billing_reason: str,
    currency: str,
    period: tuple[int, int],
    now: int,
    params: dict[str, Any] | None = None,
) -> JSONDict:
    params = params or {}
    inv_id = new_id("in")
    parent = None
    if subscription_id:
        parent = {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": subscription_id},
        }
    return {
        "id": inv_id,
        "object": "invoice",
        "account_country": "US",
        "account_name": "seatsvc emulator",
        "account_tax_ids": None,
        "amount_due": 0,
        "amount_overpaid": 0,
        "amount_paid": 0,
        "amount_remaining": 0,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": 0,
        "attempted": False,
        "auto_advance": params.get("auto_advance") in ("true", True),
        "automatic_tax": {
            "disabled_reason": None,
            "enabled": False,
            "liability": None,
            "provider": None,
            "status": None,
        },
        "automatically_finalizes_at": None,
        "billing_reason": billing_reason,
        "collection_method": params.get("collection_method") or "charge_automatically",
        "created": now,
        "currency": currency,
        "custom_fields": None,
        "customer": customer["id"],
        "customer_account": None,
        "customer_address": customer.get("address"),
        "customer_email": customer.get("email"),
        "customer_name": customer.get("name"),
        "customer_phone": customer.get("phone"),
        "customer_shipping": None,
        "customer_tax_exempt": customer.get("tax_exempt", "none"),
        "customer_tax_ids": [],
        "default_payment_method": params.get("default_payment_method") or None,
        "default_source": None,
        "default_tax_rates": [],
        "description": params.get("description") or None,
        "discounts": [],
        "due_date": None,
        "effective_at": None,
        "ending_balance": None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": None,
        "invoice_pdf": None,
        "issuer": {"type": "self"},
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": {
            "object": "list",
            "data": [],
            "has_more": False,
            "url": f"/v1/invoices/{inv_id}/lines",
        },
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": None,
        "number": None,
        "on_behalf_of": None,
        "parent": parent,
        "payment_settings": {
            "default_mandate": None,
            "payment_method_options": None,
            "payment_method_types": None,
        },
        "period_end": period[1],
        "period_start": period[0],
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": "draft",
        "status_transitions": {
            "finalized_at": None,
            "marked_uncollectible_at": None,
            "paid_at": None,
            "voided_at": None,
        },
        "subscription": subscription_id,
        "subtotal": 0,
        "subtotal_excluding_tax": 0,
        "test_clock": None,
        "total": 0,
        "total_discount_amounts": [],
        "total_excluding_tax": 0,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": None,
    }


def retotal(inv: JSONDict) -> None:
    """Recompute an invoice's amounts from its lines (no tax, no discounts)."""
    total = sum(int(line["amount"]) for line in inv["lines"]["data"])
    inv["subtotal"] = inv["subtotal_excluding_tax"] = total
    inv["total"] = inv["total_excluding_tax"] = total
    due = max(total, 0)
    inv["amount_due"] = due
    inv["amount_remaining"] = max(due - int(inv["amount_paid"]), 0)


def event(
    event_type: str,
    obj: JSONDict,
    now: int,
    *,
    previous_attributes: JSONDict | None = None,
    request_id: str | None = None,
    idempotency_key: str | None = None,
    pending_webhooks: int = 0,
) -> JSONDict:
    data: JSONDict = {"object": obj}
    if previous_attributes is not None:
        data["previous_attributes"] = previous_attributes
    return {
        "id": new_id("evt"),
        "object": "event",
        "api_version": API_VERSION,
        "created": now,
        "data": data,
        "livemode": False,
        "pending_webhooks": pending_webhooks,
        "request": {"id": request_id, "idempotency_key": idempotency_key},
        "type": event_type,
    }


def webhook_endpoint(params: dict[str, Any], secret: str, now: int) -> JSONDict:
    events = params.get("enabled_events") or ["*"]
    return {
        "id": new_id("we"),
        "object": "webhook_endpoint",
        "api_version": params.get("api_version") or None,
        "application": None,
        "created": now,
        "description": params.get("description") or None,
        "enabled_events": list(events),
        "livemode": False,
        "metadata": dict(params.get("metadata") or {}),
        "status": "enabled",
        "url": params["url"],
        "_secret": secret,
    }


def deleted(obj_id: str, kind: str) -> JSONDict:
    return {"id": obj_id, "object": kind, "deleted": True}
