"""The Stripe emulator can keep its state across a restart (what `make run` uses)."""

from __future__ import annotations

import json
from pathlib import Path

from seatsvc.billing.catalog import ensure_prices
from stripe_emulator import StripeEmulator
from stripe_emulator.persist import persist


def test_a_subscription_survives_a_restart_and_can_still_be_changed(tmp_path: Path) -> None:
    state = tmp_path / "instance" / "stripe-emulator.json"
    first = StripeEmulator()
    first.start()
    saver = persist(first, state, interval=60)  # only the final save on stop()
    first.add_webhook_endpoint("http://127.0.0.1:9/webhooks/stripe", "whsec_first")
    client = first.client()
    prices = ensure_prices(client)
    customer = client.v1.customers.create(
        params={
            "email": "clinic@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    subscription = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": prices["base"], "quantity": 2}]}
    )
    saver.stop()
    first.stop()
    saved = json.loads(state.read_text())
    assert {o["object"] for o in saved["objects"]} >= {"customer", "price", "subscription"}
    assert "webhook_endpoint" not in {o["object"] for o in saved["objects"]}

    second = StripeEmulator()
    second.start()
    try:
        again = persist(second, state, interval=60)
        client = second.client()
        assert ensure_prices(client) == prices  # found, not created twice
        found = client.v1.subscriptions.retrieve(subscription.id)
        assert found.customer == customer.id
        item = found["items"]["data"][0]
        assert item.quantity == 2
        updated = client.v1.subscriptions.update(
            subscription.id,
            params={"items": [{"id": item.id, "quantity": 3}], "proration_behavior": "none"},
        )
        assert updated["items"]["data"][0].quantity == 3
        assert second.objects("webhook_endpoint") == []  # registered again by whoever starts it
        again.stop()
    finally:
        second.stop()
    third = StripeEmulator()
    try:
        persist(third, state, interval=60)
        restored = third.get(subscription.id)
        assert restored is not None
        assert restored["items"]["data"][0]["quantity"] == 3
    finally:
        third.stop()


def test_without_a_file_nothing_is_restored(tmp_path: Path) -> None:
    emulator = StripeEmulator()
    saver = persist(emulator, tmp_path / "none.json", interval=60)
    assert emulator.objects("customer") == []
    saver.stop()
    assert json.loads((tmp_path / "none.json").read_text())["objects"] == []
