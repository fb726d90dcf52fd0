"""Money: billing periods, proration amounts, invoices and (emulated) card charges."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from stripe_emulator import errors, shapes_billing
from stripe_emulator.context import Ctx
from stripe_emulator.shapes import DECLINE_ON_CHARGE
from stripe_emulator.wire import JSONDict

TIMES = "\u00d7"  # Stripe writes "2 <multiplication sign> Base" in line descriptions


def add_interval(ts: int, interval: str, count: int = 1) -> int:
    """`ts` moved on by `count` intervals; months keep the day, clamped to month end."""
    start = datetime.fromtimestamp(ts, UTC)
    if interval == "day":
        return int((start + timedelta(days=count)).timestamp())
    if interval == "week":
        return int((start + timedelta(weeks=count)).timestamp())
    months = count * (12 if interval == "year" else 1)
    month_index = start.month - 1 + months
    year, month = start.year + month_index // 12, month_index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


def round_half_up(value: Fraction) -> int:
    sign = -1 if value < 0 else 1
    return sign * int(abs(value) + Fraction(1, 2))


def prorated_amount(
    unit_amount: int, quantity: int, period_start: int, period_end: int, at: int
) -> int:
    """Amount for the rest of the period after `at`, to the second (Stripe: "calculates
    proration down to the second", https://docs.stripe.com/billing/subscriptions/prorations).
    Each line is rounded to the nearest cent on its own, as Stripe's invoice lines are."""
    total = period_end - period_start
    if total <= 0:
        return 0
    remaining = min(max(period_end - at, 0), total)
    return round_half_up(Fraction(unit_amount * quantity * remaining, total))


@dataclass
class ItemChange:
    item_id: str
    old_price: JSONDict | None
    old_quantity: int
    new_price: JSONDict | None
    new_quantity: int


def proration_lines(ctx: Ctx, sub: JSONDict, changes: list[ItemChange], at: int) -> list[JSONDict]:
    """Invoice items (not yet stored) for the unused and remaining time of each change."""
    start, end = int(sub["_period_start"]), int(sub["_period_end"])
    day = datetime.fromtimestamp(at, UTC).strftime("%d %b %Y")
    out: list[JSONDict] = []
    for ch in changes:
        same_price = (ch.old_price or {}).get("id") == (ch.new_price or {}).get("id")
        if same_price and ch.old_quantity == ch.new_quantity:
            continue
        for price, qty, sign, label in (
            (ch.old_price, ch.old_quantity, -1, "Unused time on"),
            (ch.new_price, ch.new_quantity, 1, "Remaining time on"),
        ):
            if price is None or qty <= 0:
                continue
            amount = sign * prorated_amount(int(price["unit_amount"] or 0), qty, start, end, at)
            product = ctx.store.find(price["product"], "product")
            name = product["name"] if product else price["product"]
            out.append(
                shapes_billing.invoice_item(
                    customer_id=sub["customer"],
                    amount=amount,
                    currency=price["currency"],
                    description=f"{label} {qty} {TIMES} {name} after {day}",
                    period=(at, end),
                    now=ctx.now,
                    subscription_id=sub["id"],
                    subscription_item_id=ch.item_id,
                    price_id=price["id"],
                    product_id=price["product"],
                    quantity=qty,
                    proration=True,
                )
            )
    return out


def pending_items(ctx: Ctx, customer_id: str, subscription_id: str | None) -> list[JSONDict]:
    found = [
        ii
        for ii in ctx.store.all("invoiceitem")
        if ii["customer"] == customer_id and ii["invoice"] is None and not ii.get("_preview")
    ]
    if subscription_id is not None:
        found = [ii for ii in found if _item_subscription(ii) == subscription_id]
    return list(reversed(found))  # oldest first on the invoice


def _item_subscription(ii: JSONDict) -> str | None:
    parent = ii.get("parent") or {}
    details = parent.get("subscription_details") or {}
    sub_id = details.get("subscription")
    return str(sub_id) if sub_id else None


def line_from_invoice_item(inv: JSONDict, ii: JSONDict) -> JSONDict:
    price_details = ii["pricing"]["price_details"]
    return shapes_billing.line_item(
        invoice_id=inv["id"],
        amount=int(ii["amount"]),
        currency=ii["currency"],
        description=ii["description"],
        period=ii["period"],
        quantity=int(ii["quantity"]),
        subscription_id=_item_subscription(ii),
        price_id=price_details.get("price"),
        product_id=price_details.get("product"),
        invoice_item_id=ii["id"],
        proration=bool(ii["proration"]),
    )


def subscription_lines(
    ctx: Ctx, inv: JSONDict, sub: JSONDict, period: tuple[int, int], trial: bool = False
) -> list[JSONDict]:
    """One line per subscription item for a whole period (or its free trial)."""
    lines = []
    for item_id in sub["_item_ids"]:
        item = ctx.store.objects[item_id]
        price = ctx.store.get(item["price"], "price")
        product = ctx.store.find(price["product"], "product")
        name = product["name"] if product else price["product"]
        qty = int(item["quantity"])
        amount = 0 if trial else int(price["unit_amount"] or 0) * qty
        label = f"Trial period for {name}" if trial else f"{qty} {TIMES} {name}"
        lines.append(
            shapes_billing.line_item(
                invoice_id=inv["id"],
                amount=amount,
                currency=price["currency"],
                description=label,
                period={"start": period[0], "end": period[1]},
                quantity=qty,
                subscription_id=sub["id"],
                price_id=price["id"],
                product_id=price["product"],
                subscription_item_id=item_id,
            )
        )
    return lines


def create_invoice(
    ctx: Ctx,
    customer: JSONDict,
    sub: JSONDict | None,
    billing_reason: str,
    *,
    include_pending: bool,
    period: tuple[int, int] | None = None,
    trial: bool = False,
    params: dict[str, object] | None = None,
    enforce_limits: bool = True,
) -> JSONDict:
    """A draft invoice holding the pending invoice items (and, for cycles, the period's
    subscription lines). Stripe's per-subscription invoice limits apply."""
    store = ctx.store
    sub_id = sub["id"] if sub else None
    if sub_id and enforce_limits:
        store.check_invoice_creation(sub_id)
    now = ctx.now
    currency = str(sub["currency"]) if sub else str(customer.get("currency") or "usd")
    inv = shapes_billing.invoice(
        customer=customer,
        subscription_id=sub_id,
        billing_reason=billing_reason,
        currency=currency,
        period=period or (now, now),
        now=now,
        params=dict(params or {}),
    )
    lines: list[JSONDict] = []
    if include_pending:
        for ii in pending_items(ctx, customer["id"], sub_id):
            ii["invoice"] = inv["id"]
            lines.append(line_from_invoice_item(inv, ii))
    if sub is not None and period is not None:
        lines.extend(subscription_lines(ctx, inv, sub, period, trial))
    inv["lines"]["data"] = lines
    shapes_billing.retotal(inv)
    store.add(inv)
    if sub_id:
        store.record_invoice_creation(sub_id)
    ctx.emit("invoice.created", inv)
    return inv


def finalize(ctx: Ctx, inv: JSONDict) -> None:
    if inv["status"] != "draft":
        raise errors.invalid_request(
            "This invoice is already finalized, you can't re-finalize a non-draft invoice.",
            code="invoice_not_editable",
        )
    customer = ctx.store.get(inv["customer"], "customer")
    seq = int(customer["next_invoice_sequence"])
    customer["next_invoice_sequence"] = seq + 1
    inv["number"] = f"{customer['invoice_prefix']}-{seq:04d}"
    inv["status"] = "open"
    inv["status_transitions"]["finalized_at"] = ctx.now
    inv["effective_at"] = ctx.now
    inv["hosted_invoice_url"] = f"https://invoice.stripe.com/i/emulator/{inv['id']}"
    ctx.emit("invoice.finalized", inv)


def payment_method_for(ctx: Ctx, inv: JSONDict, override: str | None = None) -> JSONDict | None:
    store = ctx.store
    candidates: list[str | None] = [override, inv.get("default_payment_method")]
    if inv.get("subscription"):
        sub = store.find(inv["subscription"], "subscription")
        if sub is not None:
            candidates.append(sub.get("default_payment_method"))
    customer = store.find(inv["customer"], "customer")
    if customer is not None:
        candidates.append(customer["invoice_settings"].get("default_payment_method"))
    for pm_id in candidates:
        if pm_id:
            return store.get(str(pm_id), "payment_method", "payment_method")
    return None


def charge_error(ctx: Ctx, inv: JSONDict, override: str | None = None) -> errors.StripeError | None:
    """Would charging this invoice fail? (test cards decide; nothing is changed)."""
    if int(inv["amount_due"]) <= 0:
        return None
    pm = payment_method_for(ctx, inv, override)
    if pm is None:
        return errors.StripeError(
            402,
            "This customer has no attached payment source or default payment method.",
            type_="card_error",
            code="payment_method_missing",  # emulator's code; Stripe varies by flow
            extra={"invoice": inv["id"]},
        )
    decline = DECLINE_ON_CHARGE.get(str(pm.get("_token")))
    if decline:
        return errors.card_declined(decline, invoice_id=inv["id"], payment_method=pm["id"])
    return None


def attempt_payment(
    ctx: Ctx, inv: JSONDict, override: str | None = None
) -> errors.StripeError | None:
    """Charge an open invoice. Returns the card error on failure (events emitted either way)."""
    failure = charge_error(ctx, inv, override)
    if int(inv["amount_due"]) > 0:
        inv["attempt_count"] = int(inv["attempt_count"]) + 1
        inv["attempted"] = True
    if failure is not None:
        inv["last_finalization_error"] = None
        ctx.emit("invoice.payment_failed", inv)
        return failure
    inv["amount_paid"] = inv["amount_due"]
    inv["amount_remaining"] = 0
    inv["status"] = "paid"
    inv["status_transitions"]["paid_at"] = ctx.now
    inv["next_payment_attempt"] = None
    if override:
        inv["default_payment_method"] = override
    ctx.emit("invoice.paid", inv)
    ctx.emit("invoice.payment_succeeded", inv)
    return None
