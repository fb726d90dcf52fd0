"""`POST /v1/invoices/create_preview`: the invoice Stripe would create, never stored."""

from __future__ import annotations

from typing import Any

from stripe_emulator import billing, shapes_billing, subscriptions
from stripe_emulator.context import Ctx
from stripe_emulator.wire import JSONDict, as_int, new_id


def create_preview(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    """The invoice Stripe would create: for `subscription_details` item changes with
    `always_invoice`, the immediate proration invoice; otherwise the next renewal with
    pending items and prorations. Nothing is stored."""
    store = ctx.store
    sub = None
    if p.get("subscription"):
        sub = store.get(str(p["subscription"]), "subscription", "subscription")
    cust_id = p.get("customer") or (sub["customer"] if sub else None)
    customer = store.get(str(cust_id), "customer", "customer")
    details = p.get("subscription_details") or {}
    proration = str(details.get("proration_behavior") or "create_prorations")
    at = as_int(details.get("proration_date")) or ctx.now
    extra: list[JSONDict] = []
    plans: list[subscriptions.PlannedItem] = []
    if sub is not None and details.get("items"):
        plans = subscriptions.plan_items(ctx, sub, details["items"])
        if proration != "none" and sub["status"] != "trialing":
            extra = billing.proration_lines(ctx, sub, list(plans), at)
    pending = billing.pending_items(ctx, customer["id"], sub["id"] if sub else None)
    reason = "subscription_update" if proration == "always_invoice" else "upcoming"
    period = (at, at)
    if sub is not None and reason == "upcoming":
        period = (int(sub["_period_end"]), int(sub["_period_end"]))
    inv = shapes_billing.invoice(
        customer=customer,
        subscription_id=sub["id"] if sub else None,
        billing_reason=reason,
        currency=str(sub["currency"]) if sub else "usd",
        period=period,
        now=ctx.now,
    )
    inv["id"] = new_id("upcoming_in")
    inv["lines"]["data"] = [billing.line_from_invoice_item(inv, ii) for ii in pending + extra]
    if sub is not None and reason == "upcoming":
        inv["lines"]["data"] += _renewal_preview_lines(ctx, inv, sub, plans)
    shapes_billing.retotal(inv)
    return inv


def _renewal_preview_lines(
    ctx: Ctx, inv: JSONDict, sub: JSONDict, plans: list[subscriptions.PlannedItem]
) -> list[JSONDict]:
    start = int(sub["_period_end"])
    price = ctx.store.get(ctx.store.objects[sub["_item_ids"][0]]["price"], "price")
    rec = price["recurring"]
    shadow = dict(sub)
    shadow["_item_ids"] = list(sub["_item_ids"])
    quantities = {p.item_id: p for p in plans}
    lines = billing.subscription_lines(
        ctx,
        inv,
        shadow,
        (start, billing.add_interval(start, rec["interval"], rec["interval_count"])),
    )
    for line in lines:
        item_id = line["parent"]["subscription_item_details"]["subscription_item"]
        plan = quantities.get(item_id)
        if plan is not None and plan.new_price is not None:
            line["quantity"] = plan.new_quantity
            line["amount"] = line["subtotal"] = (
                int(plan.new_price["unit_amount"] or 0) * plan.new_quantity
            )
    return lines
