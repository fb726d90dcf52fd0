"""A trial that ends without a payment method: `trial_settings.end_behavior`.

Stripe (the Subscription object's `status`): "A subscription can only enter a `paused`
status when a trial ends without a payment method. A paused subscription doesn't
generate invoices and can be resumed after your customer adds their payment method."
`missing_payment_method` is `create_invoice` (default: the invoice is created and its
charge fails), `pause` or `cancel`. Stripe emits `customer.subscription.paused` (and
`…updated`) when it pauses, `customer.subscription.resumed` when it resumes.
"""

from __future__ import annotations

from stripe_emulator import billing, cancel
from stripe_emulator.context import Ctx
from stripe_emulator.events import previous_attributes
from stripe_emulator.render import render
from stripe_emulator.wire import JSONDict


def missing_payment_method_behavior(sub: JSONDict) -> str:
    settings = sub.get("trial_settings") or {}
    return str((settings.get("end_behavior") or {}).get("missing_payment_method") or "")


def has_payment_method(ctx: Ctx, sub: JSONDict) -> bool:
    probe = {"default_payment_method": None, "subscription": sub["id"], "customer": sub["customer"]}
    return billing.payment_method_for(ctx, probe) is not None


def end_trial_without_payment_method(ctx: Ctx, sub: JSONDict, at: int) -> bool:
    """Pause or cancel a trial ending without a payment method; False: bill as usual."""
    behavior = missing_payment_method_behavior(sub)
    if behavior not in ("pause", "cancel") or has_payment_method(ctx, sub):
        return False
    if behavior == "cancel":
        sub["cancellation_details"]["reason"] = "cancellation_requested"
        cancel.end_subscription(ctx, sub, at=at)
        return True
    before = render(ctx.store, sub)
    sub["status"] = "paused"
    sub["_period_start"] = sub["_period_end"] = at  # no period runs while paused
    ctx.emit("customer.subscription.paused", sub)
    prev = previous_attributes(before, render(ctx.store, sub))
    if prev:
        ctx.emit("customer.subscription.updated", sub, prev)
    return True
