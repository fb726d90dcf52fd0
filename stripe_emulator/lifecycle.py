"""What happens as the emulated clock moves: trials end, periods renew, pending updates
expire, `cancel_at_period_end` subscriptions end."""

from __future__ import annotations

from collections.abc import Callable

from stripe_emulator import billing, cancel, subscriptions, trials
from stripe_emulator.context import Ctx
from stripe_emulator.render import render
from stripe_emulator.wire import JSONDict

TRIAL_WILL_END_LEAD = 3 * 86400  # Stripe sends trial_will_end three days before
INCOMPLETE_TTL = 23 * 3600  # an unpaid first invoice expires the subscription after 23 h


def _next_due(sub: JSONDict) -> tuple[int, str] | None:
    status = sub["status"]
    if status in ("canceled", "incomplete_expired"):
        return None
    due: list[tuple[int, str]] = []
    pending = sub.get("pending_update")
    if pending:
        due.append((int(pending["expires_at"]), "expire_pending"))
    if status == "trialing":
        end = int(sub["trial_end"] or sub["_period_end"])
        if not sub.get("_trial_will_end_sent") and end - TRIAL_WILL_END_LEAD > int(sub["created"]):
            due.append((end - TRIAL_WILL_END_LEAD, "trial_will_end"))
        due.append((end, "trial_end"))
    elif status in ("active", "past_due", "unpaid"):
        due.append((int(sub["_period_end"]), "renew"))
    elif status == "incomplete":
        due.append((int(sub["created"]) + INCOMPLETE_TTL, "expire_incomplete"))
    return min(due) if due else None


def _start_period(ctx: Ctx, sub: JSONDict, start: int, reason: str) -> None:
    store = ctx.store
    price = store.get(store.objects[sub["_item_ids"][0]]["price"], "price")
    rec = price["recurring"]
    end = billing.add_interval(start, rec["interval"], rec["interval_count"])
    sub["_period_start"], sub["_period_end"] = start, end
    customer = store.get(sub["customer"], "customer")
    inv = billing.create_invoice(
        ctx,
        customer,
        sub,
        reason,
        include_pending=True,
        period=(start, end),
        enforce_limits=False,
    )
    # Stripe leaves renewal invoices in draft for about an hour before finalizing; the
    # emulator finalizes and charges at once.
    billing.finalize(ctx, inv)
    sub["latest_invoice"] = inv["id"]
    failed = billing.attempt_payment(ctx, inv) is not None
    sub["status"] = "past_due" if failed else "active"


# A new paid period from `at`, its invoice charged now (also how a paused one resumes).
start_period = _start_period


def process(ctx: Ctx, sub: JSONDict, kind: str, at: int) -> None:
    before = render(ctx.store, sub)
    if kind == "expire_pending":
        subscriptions.expire_pending_update(ctx, sub)
        return
    if kind == "expire_incomplete":
        _expire_incomplete(ctx, sub, before)
        return
    if kind == "trial_will_end":
        sub["_trial_will_end_sent"] = True
        ctx.emit("customer.subscription.trial_will_end", sub)
        return
    if kind == "renew" and sub.get("cancel_at_period_end"):
        cancel.end_subscription(ctx, sub, at=at)
        return
    if kind == "trial_end" and trials.end_trial_without_payment_method(ctx, sub, at):
        return  # paused (or canceled): trial_settings.end_behavior.missing_payment_method
    _start_period(ctx, sub, at, "subscription_cycle")
    after = render(ctx.store, sub)
    prev = {k: v for k, v in before.items() if after.get(k) != v}
    if prev:
        ctx.emit("customer.subscription.updated", sub, prev)


def _expire_incomplete(ctx: Ctx, sub: JSONDict, before: JSONDict) -> None:
    """Subscription statuses (https://docs.stripe.com/api/subscriptions/object#subscription_object-status):
    "If the first invoice is not paid within 23 hours, the subscription transitions to
    incomplete_expired. This is a terminal status, the open invoice will be voided". Stripe
    names no event for it; the emulator sends customer.subscription.updated."""
    sub["status"] = "incomplete_expired"
    sub["ended_at"] = ctx.now
    inv = ctx.store.find(str(sub.get("latest_invoice")), "invoice")
    if inv is not None and inv["status"] == "open":
        inv["status"] = "void"
        inv["status_transitions"]["voided_at"] = ctx.now
        ctx.emit("invoice.voided", inv)
    after = render(ctx.store, sub)
    ctx.emit(
        "customer.subscription.updated", sub, {k: v for k, v in before.items() if after.get(k) != v}
    )


def advance(ctx_factory: Callable[[], Ctx], target: int) -> int:
    """Move the clock to `target`, handling every due subscription event in time order."""
    handled = 0
    while True:
        ctx = ctx_factory()
        store = ctx.store
        with store.mutex:
            best: tuple[int, str, JSONDict] | None = None
            for sub in store.all("subscription"):
                due = _next_due(sub)
                if due and due[0] <= target and (best is None or due[0] < best[0]):
                    best = (due[0], due[1], sub)
            if best is None:
                store.clock.set(target)
                store.prune_idempotency()
                return handled
            at, kind, sub = best
            store.clock.set(at)
            process(ctx, sub, kind, at)
            handled += 1
        ctx.flush()
