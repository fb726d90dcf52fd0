"""Customers, payment methods, products, prices, events and webhook endpoints."""

from __future__ import annotations

import secrets
from typing import Any

from stripe_emulator import cancel, errors, shapes, shapes_billing
from stripe_emulator.api import Route, out, out_list
from stripe_emulator.context import Ctx
from stripe_emulator.payment_methods import attach_payment_method, payment_method_id
from stripe_emulator.store import matches_created
from stripe_emulator.wire import JSONDict, as_bool, as_list


# -- customers ---------------------------------------------------------------------------
def create_customer(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    default_pm = (p.get("invoice_settings") or {}).get("default_payment_method")
    for token in (p.get("payment_method"), default_pm):
        if token in shapes.DECLINE_ON_ATTACH:  # fail before anything is stored
            raise errors.card_declined(shapes.DECLINE_ON_ATTACH[str(token)])
    cust = ctx.store.add(shapes.customer(p, ctx.now))
    if p.get("payment_method"):
        attach_payment_method(ctx, str(p["payment_method"]), cust)
    if default_pm:
        cust["invoice_settings"]["default_payment_method"] = payment_method_id(
            ctx, cust, default_pm
        )
    ctx.emit("customer.created", cust)
    return out(ctx, cust, p)


def get_customer(ctx: Ctx, p: dict[str, Any], cus_id: str) -> JSONDict:
    stored = ctx.store.objects.get(cus_id)
    if stored is not None and stored.get("_deleted") and stored["object"] == "customer":
        return shapes_billing.deleted(cus_id, "customer")  # Stripe answers 200 with this
    return out(ctx, ctx.store.get(cus_id, "customer"), p)


def update_customer(ctx: Ctx, p: dict[str, Any], cus_id: str) -> JSONDict:
    cust = ctx.store.get(cus_id, "customer")
    before = ctx.store.snapshot(cust)
    for key in ("email", "name", "description", "phone"):
        if key in p:
            cust[key] = p[key] or None
    if "metadata" in p:
        cust["metadata"] = shapes.metadata_of(p, cust["metadata"])
    settings = p.get("invoice_settings")
    if isinstance(settings, dict) and "default_payment_method" in settings:
        cust["invoice_settings"]["default_payment_method"] = payment_method_id(
            ctx, cust, settings["default_payment_method"]
        )
    after = ctx.store.snapshot(cust)
    ctx.emit("customer.updated", cust, {k: v for k, v in before.items() if after.get(k) != v})
    return out(ctx, cust, p)


def delete_customer(ctx: Ctx, p: dict[str, Any], cus_id: str) -> JSONDict:
    cust = ctx.store.get(cus_id, "customer")
    for sub in ctx.store.all("subscription"):  # deleting a customer ends its subscriptions
        if sub["customer"] == cus_id and sub["status"] not in ("canceled", "incomplete_expired"):
            cancel.end_subscription(ctx, sub)
    cust["_deleted"] = True
    ctx.emit("customer.deleted", cust)
    return shapes_billing.deleted(cus_id, "customer")


def list_customers(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    items = ctx.store.all("customer")
    if p.get("email"):
        items = [c for c in items if c["email"] == p["email"]]
    items = [c for c in items if matches_created(c, p.get("created"))]
    return out_list(ctx, items, p, "/v1/customers")


def list_customer_pms(ctx: Ctx, p: dict[str, Any], cus_id: str) -> JSONDict:
    ctx.store.get(cus_id, "customer")
    items = [m for m in ctx.store.all("payment_method") if m["customer"] == cus_id]
    return out_list(ctx, items, p, f"/v1/customers/{cus_id}/payment_methods")


# -- payment methods ---------------------------------------------------------------------
def get_pm(ctx: Ctx, p: dict[str, Any], pm_id: str) -> JSONDict:
    if pm_id in shapes.TEST_CARDS:
        return out(ctx, ctx.store.add(shapes.payment_method(pm_id, ctx.now)), p)
    return out(ctx, ctx.store.get(pm_id, "payment_method"), p)


def attach_pm(ctx: Ctx, p: dict[str, Any], pm_id: str) -> JSONDict:
    cust = ctx.store.get(str(p.get("customer")), "customer", "customer")
    pm = attach_payment_method(ctx, pm_id, cust)
    ctx.emit("payment_method.attached", pm)
    return out(ctx, pm, p)


def detach_pm(ctx: Ctx, p: dict[str, Any], pm_id: str) -> JSONDict:
    pm = ctx.store.get(pm_id, "payment_method")
    pm["customer"] = None
    ctx.emit("payment_method.detached", pm)
    return out(ctx, pm, p)


def list_pms(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    items = ctx.store.all("payment_method")
    if p.get("customer"):
        items = [m for m in items if m["customer"] == p["customer"]]
    return out_list(ctx, items, p, "/v1/payment_methods")


# -- products and prices -----------------------------------------------------------------
def create_product(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    if p.get("id") and ctx.store.find(str(p["id"])):
        raise errors.invalid_request(
            "Product already exists.", param="id", code="resource_already_exists"
        )
    prod = ctx.store.add(shapes.product(p, ctx.now))
    ctx.emit("product.created", prod)
    return out(ctx, prod, p)


def get_product(ctx: Ctx, p: dict[str, Any], prod_id: str) -> JSONDict:
    return out(ctx, ctx.store.get(prod_id, "product"), p)


def update_product(ctx: Ctx, p: dict[str, Any], prod_id: str) -> JSONDict:
    prod = ctx.store.get(prod_id, "product")
    for key in ("name", "description"):
        if key in p:
            prod[key] = p[key] or None
    if "active" in p:
        prod["active"] = as_bool(p["active"])
    if "metadata" in p:
        prod["metadata"] = shapes.metadata_of(p, prod["metadata"])
    prod["updated"] = ctx.now
    ctx.emit("product.updated", prod)
    return out(ctx, prod, p)


def list_products(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    items = ctx.store.all("product")
    if "active" in p:
        items = [x for x in items if x["active"] == as_bool(p["active"])]
    return out_list(ctx, items, p, "/v1/products")


def _claim_lookup_key(ctx: Ctx, key: Any, transfer: bool, owner: str | None = None) -> None:
    if not key:
        return
    for other in ctx.store.all("price"):
        if other["lookup_key"] == key and other["id"] != owner:
            if not transfer:
                raise errors.invalid_request(
                    f"A price (`{other['id']}`) already uses that lookup key.",
                    param="lookup_key",
                )
            other["lookup_key"] = None


def create_price(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    if p.get("product"):
        prod_id = str(ctx.store.get(str(p["product"]), "product", "product")["id"])
    elif isinstance(p.get("product_data"), dict):
        prod = ctx.store.add(shapes.product(p["product_data"], ctx.now))
        ctx.emit("product.created", prod)
        prod_id = prod["id"]
    else:
        raise errors.missing_parameter("product")
    if p.get("unit_amount") in (None, "") and not p.get("unit_amount_decimal"):
        raise errors.missing_parameter("unit_amount")
    _claim_lookup_key(ctx, p.get("lookup_key"), as_bool(p.get("transfer_lookup_key")))
    price = ctx.store.add(shapes.price(p, prod_id, ctx.now))
    ctx.emit("price.created", price)
    return out(ctx, price, p)


def get_price(ctx: Ctx, p: dict[str, Any], price_id: str) -> JSONDict:
    return out(ctx, ctx.store.get(price_id, "price"), p)


def update_price(ctx: Ctx, p: dict[str, Any], price_id: str) -> JSONDict:
    price = ctx.store.get(price_id, "price")
    if "lookup_key" in p:
        _claim_lookup_key(ctx, p["lookup_key"], as_bool(p.get("transfer_lookup_key")), price_id)
        price["lookup_key"] = p["lookup_key"] or None
    if "active" in p:
        price["active"] = as_bool(p["active"])
    if "nickname" in p:
        price["nickname"] = p["nickname"] or None
    if "metadata" in p:
        price["metadata"] = shapes.metadata_of(p, price["metadata"])
    ctx.emit("price.updated", price)
    return out(ctx, price, p)


def list_prices(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    items = ctx.store.all("price")
    keys = [str(k) for k in as_list(p.get("lookup_keys"))]
    if keys:
        items = [x for x in items if x["lookup_key"] in keys]
    if p.get("product"):
        items = [x for x in items if x["product"] == p["product"]]
    if "active" in p:
        items = [x for x in items if x["active"] == as_bool(p["active"])]
    if p.get("type"):
        items = [x for x in items if x["type"] == p["type"]]
    return out_list(ctx, items, p, "/v1/prices")


# -- events ------------------------------------------------------------------------------
def _type_matches(event_type: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern


def list_events(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    items = [e for e in ctx.store.all("event") if matches_created(e, p.get("created"))]
    if p.get("type"):
        items = [e for e in items if _type_matches(e["type"], str(p["type"]))]
    types = [str(t) for t in as_list(p.get("types"))]
    if types:
        items = [e for e in items if any(_type_matches(e["type"], t) for t in types)]
    return out_list(ctx, items, p, "/v1/events")


def get_event(ctx: Ctx, p: dict[str, Any], evt_id: str) -> JSONDict:
    return out(ctx, ctx.store.get(evt_id, "event"), p)


# -- webhook endpoints -------------------------------------------------------------------
def add_webhook_endpoint(ctx: Ctx, p: dict[str, Any], secret: str | None = None) -> JSONDict:
    secret = secret or "whsec_" + secrets.token_hex(16)
    endpoint = ctx.store.add(shapes_billing.webhook_endpoint(p, secret, ctx.now))
    result = out(ctx, endpoint, p)
    result["secret"] = secret  # only the create answer carries the signing secret
    return result


def create_webhook_endpoint(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    return add_webhook_endpoint(ctx, p)


def get_webhook_endpoint(ctx: Ctx, p: dict[str, Any], we_id: str) -> JSONDict:
    return out(ctx, ctx.store.get(we_id, "webhook_endpoint"), p)


def update_webhook_endpoint(ctx: Ctx, p: dict[str, Any], we_id: str) -> JSONDict:
    endpoint = ctx.store.get(we_id, "webhook_endpoint")
    if p.get("url"):
        endpoint["url"] = p["url"]
    if "enabled_events" in p:
        endpoint["enabled_events"] = [str(x) for x in as_list(p["enabled_events"])]
    if "disabled" in p:
        endpoint["status"] = "disabled" if as_bool(p["disabled"]) else "enabled"
    if "description" in p:
        endpoint["description"] = p["description"] or None
    return out(ctx, endpoint, p)


def delete_webhook_endpoint(ctx: Ctx, p: dict[str, Any], we_id: str) -> JSONDict:
    ctx.store.get(we_id, "webhook_endpoint")["_deleted"] = True
    return shapes_billing.deleted(we_id, "webhook_endpoint")


def list_webhook_endpoints(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    return out_list(ctx, ctx.store.all("webhook_endpoint"), p, "/v1/webhook_endpoints")


ROUTES = [
    Route("POST", "/v1/customers", create_customer, "CustomerCreateParams"),
    Route("GET", "/v1/customers", list_customers, "CustomerListParams"),
    Route("GET", "/v1/customers/<cus_id>", get_customer, "CustomerRetrieveParams"),
    Route("POST", "/v1/customers/<cus_id>", update_customer, "CustomerUpdateParams"),
    Route("DELETE", "/v1/customers/<cus_id>", delete_customer, "CustomerDeleteParams"),
    Route(
        "GET",
        "/v1/customers/<cus_id>/payment_methods",
        list_customer_pms,
        "CustomerListPaymentMethodsParams",
    ),
    Route("GET", "/v1/payment_methods", list_pms, "PaymentMethodListParams"),
    Route("GET", "/v1/payment_methods/<pm_id>", get_pm, "PaymentMethodRetrieveParams"),
    Route("POST", "/v1/payment_methods/<pm_id>/attach", attach_pm, "PaymentMethodAttachParams"),
    Route("POST", "/v1/payment_methods/<pm_id>/detach", detach_pm, "PaymentMethodDetachParams"),
    Route("POST", "/v1/products", create_product, "ProductCreateParams"),
    Route("GET", "/v1/products", list_products, "ProductListParams"),
    Route("GET", "/v1/products/<prod_id>", get_product, "ProductRetrieveParams"),
    Route("POST", "/v1/products/<prod_id>", update_product, "ProductUpdateParams"),
    Route("POST", "/v1/prices", create_price, "PriceCreateParams"),
    Route("GET", "/v1/prices", list_prices, "PriceListParams"),
    Route("GET", "/v1/prices/<price_id>", get_price, "PriceRetrieveParams"),
    Route("POST", "/v1/prices/<price_id>", update_price, "PriceUpdateParams"),
    Route("GET", "/v1/events", list_events, "EventListParams"),
    Route("GET", "/v1/events/<evt_id>", get_event, "EventRetrieveParams"),
    Route("POST", "/v1/webhook_endpoints", create_webhook_endpoint, "WebhookEndpointCreateParams"),
    Route("GET", "/v1/webhook_endpoints", list_webhook_endpoints, "WebhookEndpointListParams"),
    Route(
        "GET",
        "/v1/webhook_endpoints/<we_id>",
        get_webhook_endpoint,
        "WebhookEndpointRetrieveParams",
    ),
    Route(
        "POST",
        "/v1/webhook_endpoints/<we_id>",
        update_webhook_endpoint,
        "WebhookEndpointUpdateParams",
    ),
    Route(
        "DELETE",
        "/v1/webhook_endpoints/<we_id>",
        delete_webhook_endpoint,
        "WebhookEndpointDeleteParams",
    ),
]
