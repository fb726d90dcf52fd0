"""Subscriptions, subscription items, invoices and invoice items."""

from __future__ import annotations

from typing import Any

from stripe_emulator import (
    billing,
    cancel,
    errors,
    lifecycle,
    preview,
    shapes,
    shapes_billing,
    subscriptions,
)
from stripe_emulator.api import Route, out, out_list
from stripe_emulator.context import Ctx
from stripe_emulator.payment_methods import payment_method_id
from stripe_emulator.render import render_item
from stripe_emulator.store import Store, matches_created
from stripe_emulator.wire import JSONDict, as_int

ACTIVE_STATUSES = ("active", "past_due", "unpaid", "trialing", "incomplete", "paused")


# -- lock keys: which subscription a write touches ---------------------------------------
def lock_sub(store: Store, p: dict[str, Any], kw: dict[str, str]) -> str | None:
    return kw.get("sub_id")


def lock_item_sub(store: Store, p: dict[str, Any], kw: dict[str, str]) -> str | None:
    item = store.find(kw.get("si_id", ""), "subscription_item")
    return str(item["subscription"]) if item else None


def lock_param_sub(store: Store, p: dict[str, Any], kw: dict[str, str]) -> str | None:
    return str(p["subscription"]) if p.get("subscription") else None


def lock_invoice_sub(store: Store, p: dict[str, Any], kw: dict[str, str]) -> str | None:
    inv = store.find(kw.get("in_id", ""), "invoice")
    return str(inv["subscription"]) if inv and inv.get("subscription") else None


# -- subscriptions -----------------------------------------------------------------------
def create_subscription(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    return out(ctx, subscriptions.create_subscription(ctx, p), p)


def get_subscription(ctx: Ctx, p: dict[str, Any], sub_id: str) -> JSONDict:
    return out(ctx, ctx.store.get(sub_id, "subscription"), p)


def update_subscription(ctx: Ctx, p: dict[str, Any], sub_id: str) -> JSONDict:
    sub = ctx.store.get(sub_id, "subscription")
    subscriptions.update_subscription(ctx, sub, p)
    if p.get("trial_end") == "now" and sub["status"] == "trialing":
        lifecycle.process(ctx, sub, "trial_end", ctx.now)  # the paid period starts now
    return out(ctx, sub, p)


def cancel_subscription(ctx: Ctx, p: dict[str, Any], sub_id: str) -> JSONDict:
    sub = ctx.store.get(sub_id, "subscription")
    return out(ctx, cancel.cancel_subscription(ctx, sub, p), p)


def list_subscriptions(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    items = ctx.store.all("subscription")
    status = str(p.get("status") or "")
    if status == "ended":
        items = [s for s in items if s["status"] in ("canceled", "incomplete_expired")]
    elif status and status != "all":
        items = [s for s in items if s["status"] == status]
    elif not status:
        items = [s for s in items if s["status"] in ACTIVE_STATUSES]
    if p.get("customer"):
        items = [s for s in items if s["customer"] == p["customer"]]
    if p.get("price"):
        items = [
            s
            for s in items
            if any(ctx.store.objects[i]["price"] == p["price"] for i in s["_item_ids"])
        ]
    items = [s for s in items if matches_created(s, p.get("created"))]
    return out_list(ctx, items, p, "/v1/subscriptions")


# -- subscription items (each call is a subscription update of one item) -----------------
_PASS_THROUGH = ("proration_behavior", "payment_behavior", "proration_date")


def _item_update(ctx: Ctx, p: dict[str, Any], sub: JSONDict, entry: JSONDict) -> None:
    update: dict[str, Any] = {"items": [entry]}
    update.update({k: p[k] for k in _PASS_THROUGH if k in p})
    subscriptions.update_subscription(ctx, sub, update)


def create_item(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    sub = ctx.store.get(str(p.get("subscription")), "subscription", "subscription")
    entry: dict[str, Any] = {k: p[k] for k in ("price", "quantity") if k in p}
    before = set(sub["_item_ids"])
    _item_update(ctx, p, sub, entry)
    new_ids = [i for i in sub["_item_ids"] if i not in before]
    if not new_ids:  # kept pending (pending_if_incomplete): show the would-be item
        pending = (sub.get("pending_update") or {}).get("subscription_items") or []
        return pending[-1] if pending else {}
    return render_item(ctx.store, ctx.store.objects[new_ids[0]])


def get_item(ctx: Ctx, p: dict[str, Any], si_id: str) -> JSONDict:
    return render_item(ctx.store, ctx.store.get(si_id, "subscription_item"))


def update_item(ctx: Ctx, p: dict[str, Any], si_id: str) -> JSONDict:
    item = ctx.store.get(si_id, "subscription_item")
    sub = ctx.store.get(item["subscription"], "subscription")
    entry: dict[str, Any] = {"id": si_id}
    entry.update({k: p[k] for k in ("price", "quantity", "metadata") if k in p})
    _item_update(ctx, p, sub, entry)
    return render_item(ctx.store, item)


def delete_item(ctx: Ctx, p: dict[str, Any], si_id: str) -> JSONDict:
    item = ctx.store.get(si_id, "subscription_item")
    sub = ctx.store.get(item["subscription"], "subscription")
    _item_update(ctx, p, sub, {"id": si_id, "deleted": "true"})
    return shapes_billing.deleted(si_id, "subscription_item")


def list_items(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    sub = ctx.store.get(str(p.get("subscription")), "subscription", "subscription")
    items = [ctx.store.objects[i] for i in reversed(sub["_item_ids"])]
    page = out_list(ctx, items, p, f"/v1/subscription_items?subscription={sub['id']}")
    page["data"] = [render_item(ctx.store, ctx.store.objects[i["id"]]) for i in page["data"]]
    return page


# -- invoices ----------------------------------------------------------------------------
def create_invoice(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    customer = ctx.store.get(str(p.get("customer")), "customer", "customer")
    sub = None
    if p.get("subscription"):
        sub = ctx.store.get(str(p["subscription"]), "subscription", "subscription")
    # Stripe's default is `exclude` when no subscription is given
    # (https://docs.stripe.com/api/invoices/create#create_invoice-pending_invoice_items_behavior);
    # with `subscription`, that subscription's pending items are invoiced.
    behavior = p.get("pending_invoice_items_behavior") or ("include" if sub else "exclude")
    inv = billing.create_invoice(
        ctx, customer, sub, "manual", include_pending=behavior == "include", params=p
    )
    if "metadata" in p:
        inv["metadata"] = shapes.metadata_of(p)
    return out(ctx, inv, p)


def get_invoice(ctx: Ctx, p: dict[str, Any], in_id: str) -> JSONDict:
    return out(ctx, ctx.store.get(in_id, "invoice"), p)


def list_invoices(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    items = ctx.store.all("invoice")
    for key in ("customer", "subscription", "status"):
        if p.get(key):
            items = [i for i in items if i[key] == p[key]]
    items = [i for i in items if matches_created(i, p.get("created"))]
    return out_list(ctx, items, p, "/v1/invoices")


def list_lines(ctx: Ctx, p: dict[str, Any], in_id: str) -> JSONDict:
    inv = ctx.store.get(in_id, "invoice")
    lines = list(reversed(inv["lines"]["data"]))
    page = out_list(ctx, lines, p, f"/v1/invoices/{in_id}/lines")
    page["data"].reverse()
    return page


def finalize_invoice(ctx: Ctx, p: dict[str, Any], in_id: str) -> JSONDict:
    inv = ctx.store.get(in_id, "invoice")
    billing.finalize(ctx, inv)
    if int(inv["amount_due"]) == 0:
        billing.attempt_payment(ctx, inv)
        subscriptions.after_invoice_paid(ctx, inv)
    return out(ctx, inv, p)


def pay_invoice(ctx: Ctx, p: dict[str, Any], in_id: str) -> JSONDict:
    inv = ctx.store.get(in_id, "invoice")
    if inv["status"] == "draft":
        billing.finalize(ctx, inv)
    if inv["status"] == "paid":
        raise errors.invalid_request("Invoice is already paid")
    if inv["status"] != "open":
        raise errors.invalid_request(f"You cannot pay an invoice with status {inv['status']}.")
    pm_id = None
    if p.get("payment_method"):
        customer = ctx.store.get(inv["customer"], "customer")
        pm_id = payment_method_id(ctx, customer, p["payment_method"])
    if p.get("paid_out_of_band") in ("true", True):
        inv["status"] = "paid"
        inv["status_transitions"]["paid_at"] = ctx.now
        ctx.emit("invoice.paid", inv)
    else:
        failure = billing.attempt_payment(ctx, inv, pm_id)
        if failure is not None:
            raise failure
    subscriptions.after_invoice_paid(ctx, inv)
    return out(ctx, inv, p)


def void_invoice(ctx: Ctx, p: dict[str, Any], in_id: str) -> JSONDict:
    inv = ctx.store.get(in_id, "invoice")
    if inv["status"] != "open":
        raise errors.invalid_request(f"You can only void open invoices, not {inv['status']}.")
    sub = ctx.store.find(str(inv.get("subscription")), "subscription")
    if sub is not None and sub.get("pending_update") and sub["latest_invoice"] == in_id:
        # voiding the invoice of a pending update cancels the update
        subscriptions.expire_pending_update(ctx, sub, expired_event=False)
    else:
        inv["status"] = "void"
        inv["status_transitions"]["voided_at"] = ctx.now
        ctx.emit("invoice.voided", inv)
    return out(ctx, inv, p)


# -- invoice items -----------------------------------------------------------------------
def create_invoice_item(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    customer = ctx.store.get(str(p.get("customer")), "customer", "customer")
    qty = as_int(p.get("quantity"), 1) or 1
    price_id = p.get("price") or (p.get("pricing") or {}).get("price")
    price = ctx.store.get(str(price_id), "price", "price") if price_id else None
    amount = as_int(p.get("amount"))
    if amount is None and price is not None:
        amount = int(price["unit_amount"] or 0) * qty
    if amount is None:
        raise errors.missing_parameter("amount")
    sub_id = p.get("subscription")
    if sub_id:
        ctx.store.get(str(sub_id), "subscription", "subscription")
    period = p.get("period") or {}
    ii = shapes_billing.invoice_item(
        customer_id=customer["id"],
        amount=amount,
        currency=str(p.get("currency") or (price or {}).get("currency") or "usd"),
        description=p.get("description") or None,
        period=(
            as_int(period.get("start"), ctx.now) or ctx.now,
            as_int(period.get("end"), ctx.now) or ctx.now,
        ),
        now=ctx.now,
        subscription_id=str(sub_id) if sub_id else None,
        price_id=price["id"] if price else None,
        product_id=price["product"] if price else None,
        quantity=qty,
        metadata=shapes.metadata_of(p),
    )
    if p.get("invoice"):
        inv = ctx.store.get(str(p["invoice"]), "invoice", "invoice")
        ii["invoice"] = inv["id"]
        inv["lines"]["data"].append(billing.line_from_invoice_item(inv, ii))
        shapes_billing.retotal(inv)
    ctx.store.add(ii)
    ctx.emit("invoiceitem.created", ii)
    return out(ctx, ii, p)


def get_invoice_item(ctx: Ctx, p: dict[str, Any], ii_id: str) -> JSONDict:
    return out(ctx, ctx.store.get(ii_id, "invoiceitem"), p)


def delete_invoice_item(ctx: Ctx, p: dict[str, Any], ii_id: str) -> JSONDict:
    ii = ctx.store.get(ii_id, "invoiceitem")
    if ii["invoice"] is not None:
        raise errors.invalid_request("This invoice item is already attached to an invoice.")
    ii["_deleted"] = True
    ctx.emit("invoiceitem.deleted", ii)
    return shapes_billing.deleted(ii_id, "invoiceitem")


def list_invoice_items(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    items = ctx.store.all("invoiceitem")
    if p.get("customer"):
        items = [i for i in items if i["customer"] == p["customer"]]
    if p.get("invoice"):
        items = [i for i in items if i["invoice"] == p["invoice"]]
    if "pending" in p:
        want = str(p["pending"]) == "true"
        items = [i for i in items if (i["invoice"] is None) == want]
    return out_list(ctx, items, p, "/v1/invoiceitems")


ROUTES = [
    Route("POST", "/v1/subscriptions", create_subscription, "SubscriptionCreateParams"),
    Route("GET", "/v1/subscriptions", list_subscriptions, "SubscriptionListParams"),
    Route("GET", "/v1/subscriptions/<sub_id>", get_subscription, "SubscriptionRetrieveParams"),
    Route(
        "POST",
        "/v1/subscriptions/<sub_id>",
        update_subscription,
        "SubscriptionUpdateParams",
        lock_sub,
    ),
    Route(
        "DELETE",
        "/v1/subscriptions/<sub_id>",
        cancel_subscription,
        "SubscriptionCancelParams",
        lock_sub,
    ),
    Route(
        "POST",
        "/v1/subscription_items",
        create_item,
        "SubscriptionItemCreateParams",
        lock_param_sub,
    ),
    Route("GET", "/v1/subscription_items", list_items, "SubscriptionItemListParams"),
    Route("GET", "/v1/subscription_items/<si_id>", get_item, "SubscriptionItemRetrieveParams"),
    Route(
        "POST",
        "/v1/subscription_items/<si_id>",
        update_item,
        "SubscriptionItemUpdateParams",
        lock_item_sub,
    ),
    Route(
        "DELETE",
        "/v1/subscription_items/<si_id>",
        delete_item,
        "SubscriptionItemDeleteParams",
        lock_item_sub,
    ),
    Route("POST", "/v1/invoices", create_invoice, "InvoiceCreateParams", lock_param_sub),
    Route("GET", "/v1/invoices", list_invoices, "InvoiceListParams"),
    Route(
        "POST", "/v1/invoices/create_preview", preview.create_preview, "InvoiceCreatePreviewParams"
    ),
    Route("GET", "/v1/invoices/<in_id>", get_invoice, "InvoiceRetrieveParams"),
    Route("GET", "/v1/invoices/<in_id>/lines", list_lines, "InvoiceListLinesParams"),
    Route(
        "POST",
        "/v1/invoices/<in_id>/finalize",
        finalize_invoice,
        "InvoiceFinalizeInvoiceParams",
        lock_invoice_sub,
    ),
    Route("POST", "/v1/invoices/<in_id>/pay", pay_invoice, "InvoicePayParams", lock_invoice_sub),
    Route(
        "POST",
        "/v1/invoices/<in_id>/void",
        void_invoice,
        "InvoiceVoidInvoiceParams",
        lock_invoice_sub,
    ),
    Route("POST", "/v1/invoiceitems", create_invoice_item, "InvoiceItemCreateParams"),
    Route("GET", "/v1/invoiceitems", list_invoice_items, "InvoiceItemListParams"),
    Route("GET", "/v1/invoiceitems/<ii_id>", get_invoice_item, "InvoiceItemRetrieveParams"),
    Route("DELETE", "/v1/invoiceitems/<ii_id>", delete_invoice_item, "InvoiceItemDeleteParams"),
]
