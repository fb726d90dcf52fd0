"""Payment methods: Stripe's test card tokens and attaching them to customers."""

from __future__ import annotations

from typing import Any

from stripe_emulator import errors, shapes
from stripe_emulator.context import Ctx
from stripe_emulator.wire import JSONDict


def payment_method_id(ctx: Ctx, customer: JSONDict, value: Any) -> str | None:
    """A PaymentMethod id; Stripe's test tokens (`pm_card_visa`) are turned into a real
    PaymentMethod attached to the customer, as Stripe does."""
    if not value:
        return None
    pm = attach_payment_method(ctx, str(value), customer)
    return str(pm["id"])


def attach_payment_method(ctx: Ctx, value: str, customer: JSONDict) -> JSONDict:
    store = ctx.store
    if value in shapes.DECLINE_ON_ATTACH:
        # Attaching runs a card check; these cards fail it (https://docs.stripe.com/testing).
        raise errors.card_declined(shapes.DECLINE_ON_ATTACH[value])
    if value in shapes.TEST_CARDS:
        # A token named twice in one customer's calls (as `payment_method` and as
        # `invoice_settings.default_payment_method`) means the same card, as on Stripe.
        same = [
            m
            for m in store.all("payment_method")
            if m.get("_token") == value and m["customer"] == customer["id"]
        ]
        pm = same[0] if same else store.add(shapes.payment_method(value, ctx.now))
    else:
        pm = store.get(value, "payment_method", "payment_method")
        if pm.get("_token") in shapes.DECLINE_ON_ATTACH:
            raise errors.card_declined(shapes.DECLINE_ON_ATTACH[str(pm["_token"])])
    if pm["customer"] not in (None, customer["id"]):
        raise errors.invalid_request(
            "The payment method you provided has already been attached to a customer.",
            param="payment_method",
        )
    pm["customer"] = customer["id"]
    return pm
