"""Ending subscriptions: `DELETE /v1/subscriptions/:id` and the end of a period."""

from __future__ import annotations

from typing import Any

from stripe_emulator import billing, errors
from stripe_emulator.billing import ItemChange
from stripe_emulator.context import Ctx
from stripe_emulator.wire import JSONDict, as_bool


def cancel_subscription(ctx: Ctx, sub: JSONDict, params: dict[str, Any]) -> JSONDict:
    store = ctx.store
    if sub["status"] == "canceled":
        raise errors.invalid_request(f"This subscription has already been canceled: {sub['id']}")
    if as_bool(params.get("prorate")) and sub["status"] != "trialing":
        plans = [
            ItemChange(
                i,
                store.get(store.objects[i]["price"], "price"),
                int(store.objects[i]["quantity"]),
                None,
                0,
            )
            for i in sub["_item_ids"]
        ]
        for line in billing.proration_lines(ctx, sub, plans, ctx.now):
            store.add(line)
    end_subscription(ctx, sub, params.get("cancellation_details"))
    if as_bool(params.get("invoice_now")):
        customer = store.get(sub["customer"], "customer")
        inv = billing.create_invoice(
            ctx, customer, sub, "subscription_cycle", include_pending=True, enforce_limits=False
        )
        billing.finalize(ctx, inv)
        billing.attempt_payment(ctx, inv)
    return sub


def end_subscription(ctx: Ctx, sub: JSONDict, details: Any = None, at: int | None = None) -> None:
    when = at or ctx.now
    sub["status"] = "canceled"
    sub["canceled_at"] = sub["canceled_at"] or ctx.now
    sub["ended_at"] = when
    sub["pending_update"] = None
    sub.pop("_pending_plans", None)
    if isinstance(details, dict):
        sub["cancellation_details"].update(details)
    if not sub["cancellation_details"].get("reason"):
        sub["cancellation_details"]["reason"] = "cancellation_requested"
    ctx.emit("customer.subscription.deleted", sub)
