"""Subscriptions: create, update items (with prorations and payment behaviours), pending
updates, cancel."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stripe_emulator import billing, errors, shapes
from stripe_emulator.billing import ItemChange
from stripe_emulator.context import Ctx
from stripe_emulator.events import previous_attributes
from stripe_emulator.payment_methods import payment_method_id
from stripe_emulator.render import render, render_item
from stripe_emulator.wire import JSONDict, as_bool, as_int, as_list, new_id


@dataclass
class PlannedItem(ItemChange):
    is_new: bool = False
    deleted: bool = False
    metadata: Any = None  # the item's `metadata` parameter, if given


def _recurring_price(ctx: Ctx, price_id: Any, param: str) -> JSONDict:
    price = ctx.store.get(str(price_id), "price", param)
    if price["type"] != "recurring":
        raise errors.invalid_request(
            "The price specified is set to `type=one_time` but this field only accepts "
            "prices with `type=recurring`.",
            param=param,
        )
    return price


def _quantity(value: Any, default: int, param: str) -> int:
    qty = as_int(value, default)
    assert qty is not None
    if qty < 0:
        raise errors.invalid_request("This value must be greater than or equal to 0.", param)
    return qty


def plan_items(ctx: Ctx, sub: JSONDict, items_param: Any) -> list[PlannedItem]:
    store = ctx.store
    plans: list[PlannedItem] = []
    for i, entry in enumerate(as_list(items_param)):
        entry = entry if isinstance(entry, dict) else {}
        if entry.get("id"):
            item = store.get(str(entry["id"]), "subscription_item", f"items[{i}][id]")
            if item["subscription"] != sub["id"]:
                raise errors.resource_missing("subscription item", item["id"], f"items[{i}][id]")
            old_price = store.get(item["price"], "price")
            new_price = old_price
            if entry.get("price"):
                new_price = _recurring_price(ctx, entry["price"], f"items[{i}][price]")
            qty = _quantity(entry.get("quantity"), int(item["quantity"]), f"items[{i}][quantity]")
            deleted = as_bool(entry.get("deleted"))
            plans.append(
                PlannedItem(
                    item["id"],
                    old_price,
                    int(item["quantity"]),
                    None if deleted else new_price,
                    0 if deleted else qty,
                    deleted=deleted,
                    metadata=entry.get("metadata"),
                )
            )
            continue
        price_id = entry.get("price") or entry.get("plan")
        if not price_id:
            raise errors.missing_parameter(f"items[{i}][price]")
        price = _recurring_price(ctx, price_id, f"items[{i}][price]")
        qty = _quantity(entry.get("quantity"), 1, f"items[{i}][quantity]")
        plans.append(
            PlannedItem(
                new_id("si", 14), None, 0, price, qty, is_new=True, metadata=entry.get("metadata")
            )
        )
    _refuse_duplicate_prices(ctx, sub, plans)
    return plans


def _refuse_duplicate_prices(ctx: Ctx, sub: JSONDict, plans: list[PlannedItem]) -> None:
    """Refuse, before anything changes, a request that would leave two items with one price
    (items kept as they are, changed by id, or added). Updating an item by id with its own
    price is fine, and so is replacing an item that is deleted in the same request."""
    planned = {p.item_id: p for p in plans}
    held: list[str] = []
    for item_id in sub["_item_ids"]:
        if item_id not in planned:
            held.append(str(ctx.store.objects[item_id]["price"]))
    for plan in plans:
        if plan.new_price is not None and not plan.deleted:
            held.append(str(plan.new_price["id"]))
    seen: set[str] = set()
    for price_id in held:
        if price_id in seen:
            raise errors.duplicate_price(price_id, creating=ctx.store.find(sub["id"]) is None)
        seen.add(price_id)


def apply_items(ctx: Ctx, sub: JSONDict, plans: list[PlannedItem]) -> None:
    store = ctx.store
    for plan in plans:
        if plan.is_new:
            assert plan.new_price is not None
            item = shapes.subscription_item(
                sub["id"], plan.new_price["id"], plan.new_quantity, ctx.now
            )
            item["id"] = plan.item_id
            item["metadata"] = shapes.metadata_of({"metadata": plan.metadata or {}})
            store.add(item)
            sub["_item_ids"].append(item["id"])
        elif plan.deleted:
            store.objects[plan.item_id]["_deleted"] = True
            sub["_item_ids"].remove(plan.item_id)
        else:
            item = store.objects[plan.item_id]
            item["quantity"] = plan.new_quantity
            if plan.new_price is not None:
                item["price"] = plan.new_price["id"]
            if plan.metadata is not None:
                item["metadata"] = shapes.metadata_of({"metadata": plan.metadata}, item["metadata"])


def _quantity_changed(plans: list[PlannedItem]) -> bool:
    return any(
        p.is_new
        or p.deleted
        or p.old_quantity != p.new_quantity
        or (p.old_price or {}).get("id") != (p.new_price or {}).get("id")
        for p in plans
    )


def create_subscription(ctx: Ctx, params: dict[str, Any]) -> JSONDict:
    store = ctx.store
    customer = store.get(str(params.get("customer")), "customer", "customer")
    entries = as_list(params.get("items"))
    if not entries:
        raise errors.missing_parameter("items")
    now = ctx.now
    first_price = _recurring_price(ctx, (entries[0] or {}).get("price"), "items[0][price]")
    sub = shapes.subscription(params, customer["id"], first_price["currency"], now)
    plans = plan_items(ctx, sub, entries)
    trial_end = params.get("trial_end")
    if trial_end == "now":
        trial_end = None
    trial_end_ts = as_int(trial_end)
    if trial_end_ts is None and params.get("trial_period_days"):
        trial_end_ts = now + 86400 * int(str(params["trial_period_days"]))
    behavior = str(params.get("payment_behavior") or "allow_incomplete")
    rec = first_price["recurring"]
    period_end = trial_end_ts or billing.add_interval(now, rec["interval"], rec["interval_count"])
    first_amount = (
        0
        if trial_end_ts
        else sum(
            int(p.new_price["unit_amount"] or 0) * p.new_quantity for p in plans if p.new_price
        )
    )
    pm_id = payment_method_id(ctx, customer, params.get("default_payment_method"))
    probe = {
        "id": None,
        "amount_due": first_amount,
        "customer": customer["id"],
        "default_payment_method": pm_id,
        "subscription": None,
    }
    failure = billing.charge_error(ctx, probe)
    if failure is not None and behavior == "error_if_incomplete":
        raise failure
    sub["default_payment_method"] = pm_id
    customer["currency"] = customer["currency"] or sub["currency"]
    sub["_period_start"], sub["_period_end"] = now, period_end
    if trial_end_ts:
        sub["trial_start"], sub["trial_end"] = now, trial_end_ts
    store.add(sub)
    apply_items(ctx, sub, plans)
    inv = billing.create_invoice(
        ctx,
        customer,
        sub,
        "subscription_create",
        include_pending=True,
        period=(now, period_end),
        trial=bool(trial_end_ts),
    )
    billing.finalize(ctx, inv)
    sub["latest_invoice"] = inv["id"]
    if behavior == "default_incomplete" and int(inv["amount_due"]) > 0:
        sub["status"] = "incomplete"
    elif billing.attempt_payment(ctx, inv) is None:
        sub["status"] = "trialing" if trial_end_ts else "active"
    else:
        sub["status"] = "incomplete"
    ctx.emit("customer.subscription.created", sub)
    return sub


SIMPLE_FIELDS = ("description", "collection_method", "days_until_due")


def update_subscription(ctx: Ctx, sub: JSONDict, params: dict[str, Any]) -> JSONDict:
    store = ctx.store
    allowed_when_ended = {"metadata", "cancellation_details", "expand"}
    if sub["status"] in ("canceled", "incomplete_expired") and set(params) - allowed_when_ended:
        raise errors.invalid_request(
            "A canceled subscription can only update its cancellation_details and metadata."
        )
    if sub["status"] == "incomplete" and set(params) - {"metadata", "default_source", "expand"}:
        # documented with the `incomplete` status on the Subscription object
        raise errors.invalid_request(
            "A subscription with status incomplete can only have metadata and default_source "
            "updated."
        )
    before = render(store, sub)
    customer = store.get(sub["customer"], "customer")
    plans = plan_items(ctx, sub, params.get("items"))
    changed = _quantity_changed(plans)
    if changed:
        store.check_quantity_update(sub["id"])
    proration = str(params.get("proration_behavior") or "create_prorations")
    behavior = str(params.get("payment_behavior") or "allow_incomplete")
    at = as_int(params.get("proration_date")) or ctx.now
    lines: list[JSONDict] = []
    # No prorations while trialing, nor while paused (a paused subscription bills nothing).
    if changed and proration != "none" and sub["status"] not in ("trialing", "paused"):
        lines = billing.proration_lines(ctx, sub, list(plans), at)
    invoice_now = proration == "always_invoice" and bool(lines)
    failure = None
    if invoice_now:
        store.check_invoice_creation(sub["id"])
        pending = billing.pending_items(ctx, customer["id"], sub["id"])
        amount = max(0, sum(int(x["amount"]) for x in pending + lines))
        pm_override = None
        if params.get("default_payment_method"):
            pm_override = payment_method_id(ctx, customer, params["default_payment_method"])
        probe = {
            "id": None,
            "amount_due": amount,
            "customer": customer["id"],
            "default_payment_method": pm_override,
            "subscription": sub["id"],
        }
        failure = billing.charge_error(ctx, probe)
        if failure is not None and behavior == "error_if_incomplete":
            raise failure
    if changed and sub.get("pending_update"):
        # A new item change replaces the pending one, computed from the current items
        # (Stripe's pending-updates guide: a conflicting update expires the pending update).
        expire_pending_update(ctx, sub)
        before = render(store, sub)
    if failure is not None and behavior == "pending_if_incomplete":
        return _make_pending_update(ctx, sub, customer, plans, lines, before)
    _apply_simple_fields(ctx, sub, customer, params)
    apply_items(ctx, sub, plans)
    for line in lines:
        store.add(line)
    if changed:
        store.record_quantity_update(sub["id"])
    if invoice_now:
        inv = billing.create_invoice(
            ctx, customer, sub, "subscription_update", include_pending=True, enforce_limits=False
        )
        billing.finalize(ctx, inv)
        sub["latest_invoice"] = inv["id"]
        awaiting = behavior == "default_incomplete" and int(inv["amount_due"]) > 0
        if awaiting or billing.attempt_payment(ctx, inv) is not None:
            sub["status"] = "past_due"
    _emit_updated(ctx, sub, before)
    return sub


def _apply_simple_fields(
    ctx: Ctx, sub: JSONDict, customer: JSONDict, params: dict[str, Any]
) -> None:
    if "metadata" in params:
        sub["metadata"] = shapes.metadata_of(params, sub["metadata"])
    for key in SIMPLE_FIELDS:
        if key in params:
            sub[key] = params[key] or None
    if "default_payment_method" in params:
        sub["default_payment_method"] = payment_method_id(
            ctx, customer, params["default_payment_method"]
        )
    if "cancel_at_period_end" in params:
        sub["cancel_at_period_end"] = as_bool(params["cancel_at_period_end"])
    if "cancellation_details" in params and isinstance(params["cancellation_details"], dict):
        sub["cancellation_details"].update(params["cancellation_details"])
    if params.get("trial_end") == "now" and sub["status"] == "trialing":
        sub["trial_end"] = ctx.now
        sub["_period_end"] = ctx.now  # the clock turns the trial into a paid period at once


def _make_pending_update(
    ctx: Ctx,
    sub: JSONDict,
    customer: JSONDict,
    plans: list[PlannedItem],
    lines: list[JSONDict],
    before: JSONDict,
) -> JSONDict:
    """payment_behavior=pending_if_incomplete and the payment failed: the invoice stays
    open, the items keep their old values, `pending_update` says what would apply
    (https://docs.stripe.com/billing/subscriptions/pending-updates)."""
    store = ctx.store
    for line in lines:
        store.add(line)
    inv = billing.create_invoice(
        ctx, customer, sub, "subscription_update", include_pending=True, enforce_limits=False
    )
    billing.finalize(ctx, inv)
    billing.attempt_payment(ctx, inv)
    would_be = []
    for plan in plans:
        if plan.deleted:
            continue
        if plan.is_new:
            assert plan.new_price is not None
            item = shapes.subscription_item(
                sub["id"], plan.new_price["id"], plan.new_quantity, ctx.now
            )
            item["id"] = plan.item_id
        else:
            item = dict(store.objects[plan.item_id])
            item["quantity"] = plan.new_quantity
            if plan.new_price is not None:
                item["price"] = plan.new_price["id"]
        would_be.append(render_item(store, item, sub))
    sub["pending_update"] = {
        "billing_cycle_anchor": None,
        "discount": None,
        "discounts": [],
        "metadata": None,
        "expires_at": ctx.now + store.config.pending_update_ttl,
        "subscription_items": would_be,
        "trial_end": None,
        "trial_from_plan": None,
    }
    sub["_pending_plans"] = plans
    sub["latest_invoice"] = inv["id"]
    _emit_updated(ctx, sub, before)
    return sub


def apply_pending_update(ctx: Ctx, sub: JSONDict) -> None:
    before = render(ctx.store, sub)
    plans: list[PlannedItem] = sub.pop("_pending_plans", [])
    apply_items(ctx, sub, plans)
    sub["pending_update"] = None
    ctx.store.record_quantity_update(sub["id"])
    ctx.emit("customer.subscription.pending_update_applied", sub)
    _emit_updated(ctx, sub, before)


def expire_pending_update(ctx: Ctx, sub: JSONDict, *, expired_event: bool = True) -> None:
    """Discard a pending update (it expired, was replaced, or its invoice was voided)."""
    before = render(ctx.store, sub)
    sub.pop("_pending_plans", None)
    sub["pending_update"] = None
    # Stripe discards the changes; the emulator also voids the unpaid update invoice so a
    # later payment cannot apply them (Stripe's docs do not say what happens to it).
    inv = ctx.store.find(str(sub.get("latest_invoice")), "invoice")
    if inv is not None and inv["status"] == "open":
        inv["status"] = "void"
        inv["status_transitions"]["voided_at"] = ctx.now
        ctx.emit("invoice.voided", inv)
    if expired_event:
        ctx.emit("customer.subscription.pending_update_expired", sub)
    _emit_updated(ctx, sub, before)


def after_invoice_paid(ctx: Ctx, inv: JSONDict) -> None:
    """A paid invoice applies a pending update and reactivates an unpaid subscription."""
    if not inv.get("subscription"):
        return
    sub = ctx.store.find(str(inv["subscription"]), "subscription")
    if sub is None:
        return
    if sub.get("pending_update") and sub.get("latest_invoice") == inv["id"]:
        apply_pending_update(ctx, sub)
    if sub["status"] in ("incomplete", "past_due", "unpaid"):
        before = render(ctx.store, sub)
        sub["status"] = "active"
        _emit_updated(ctx, sub, before)


def _emit_updated(ctx: Ctx, sub: JSONDict, before: JSONDict) -> None:
    prev = previous_attributes(before, render(ctx.store, sub))
    if prev:
        ctx.emit("customer.subscription.updated", sub, prev)
