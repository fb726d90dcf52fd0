"""Idempotency keys, Stripe's per-object lock (429 lock_timeout) and per-subscription
rate limits."""

from __future__ import annotations

import threading

import pytest
import stripe
from emulator_support import Catalog, Raw

from stripe_emulator import StripeEmulator


def test_same_key_same_params_replays_saved_response(raw: Raw, catalog: Catalog) -> None:
    headers = {"Idempotency-Key": "seat-sync-1"}
    data = {"email": "same@example.com"}
    first = raw.call("POST", "/v1/customers", data=data, headers=headers)
    second = raw.call("POST", "/v1/customers", data=data, headers=headers)
    assert first.status_code == second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Idempotent-Replayed"] == "true"
    customers = raw.call("GET", "/v1/customers", params={"email": "same@example.com"}).json()
    assert len(customers["data"]) == 1


def test_same_key_different_params_is_idempotency_error(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError) as info:
        client.v1.customers.create(
            params={"email": "b@example.com"}, options={"idempotency_key": "k1"}
        )
    assert info.value.http_status == 400
    assert info.value.error is not None and info.value.error.type == "idempotency_error"


def test_keys_expire_after_24_hours_of_emulated_time(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    first = client.v1.customers.create(params={"name": "x"}, options={"idempotency_key": "k2"})
    emulator.advance(seconds=24 * 3600 + 5)
    second = client.v1.customers.create(params={"name": "x"}, options={"idempotency_key": "k2"})
    assert first.id != second.id


def test_card_errors_are_replayed_too(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    for _ in range(2):
        with pytest.raises(stripe.CardError):
            client.v1.payment_methods.attach(
                "pm_card_chargeDeclined",
                params={"customer": customer.id},
                options={"idempotency_key": "attach-1"},
            )


def test_concurrent_writes_to_one_subscription_get_lock_timeout(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    item = sub["items"].data[0]
    emulator.configure(write_latency=0.3)
    results: list[object] = []

    def write(qty: int) -> None:
        try:
            client.v1.subscriptions.update(
                sub.id,
                params={"items": [{"id": item.id, "quantity": qty}], "proration_behavior": "none"},
            )
            results.append("ok")
        except stripe.RateLimitError as exc:
            results.append(exc)

    threads = [threading.Thread(target=write, args=(q,)) for q in (2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = [r for r in results if isinstance(r, stripe.RateLimitError)]
    assert results.count("ok") == 1
    assert len(errors) == 2
    # the SDK keeps the code on the error object for RateLimitError
    assert all(e.error and e.error.code == "lock_timeout" for e in errors)
    assert all(e.http_status == 429 for e in errors)
    assert all(e.headers and e.headers.get("Stripe-Should-Retry") == "true" for e in errors)
    # reads are never locked, and the lock is released afterwards
    emulator.configure(write_latency=0)
    client.v1.subscriptions.update(sub.id, params={"metadata": {"after": "lock"}})


def test_quantity_update_limit(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    emulator.freeze_clock()
    emulator.configure(limits={"quantity_updates_per_hour": 5})
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    item = sub["items"].data[0]
    for qty in range(2, 7):
        client.v1.subscription_items.update(
            item.id, params={"quantity": qty, "proration_behavior": "none"}
        )
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.subscription_items.update(
            item.id, params={"quantity": 50, "proration_behavior": "none"}
        )
    assert info.value.error is not None and info.value.error.code == "rate_limit"
    assert client.v1.subscription_items.retrieve(item.id).quantity == 6
    emulator.advance(seconds=3601)
    client.v1.subscription_items.update(
        item.id, params={"quantity": 7, "proration_behavior": "none"}
    )


def test_default_quantity_limit_is_200_per_hour(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    emulator.freeze_clock()
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    emulator.store.quantity_updates[sub.id] = [emulator.now()] * 200
    with pytest.raises(stripe.RateLimitError):
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": sub["items"].data[0].id, "quantity": 2}]}
        )


def test_new_invoice_limits_per_minute_and_day(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    emulator.freeze_clock()
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    # the subscription's first invoice counts: 9 more fit in this minute
    for _ in range(9):
        client.v1.invoices.create(params={"customer": catalog.customer.id, "subscription": sub.id})
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.invoices.create(params={"customer": catalog.customer.id, "subscription": sub.id})
    assert "per minute" in str(info.value)
    emulator.advance(seconds=61)
    for _ in range(10):
        client.v1.invoices.create(params={"customer": catalog.customer.id, "subscription": sub.id})
    emulator.advance(seconds=61)
    with pytest.raises(stripe.RateLimitError) as info:
        client.v1.invoices.create(params={"customer": catalog.customer.id, "subscription": sub.id})
    assert "per day" in str(info.value)


def test_same_key_while_first_request_runs_is_409(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    emulator.configure(write_latency=0.3)
    outcomes: list[object] = []

    def write() -> None:
        try:
            client.v1.subscriptions.update(
                sub.id, params={"metadata": {"k": "v"}}, options={"idempotency_key": "same"}
            )
            outcomes.append("ok")
        except stripe.StripeError as exc:  # the SDK maps 409 to APIError (and would retry it)
            outcomes.append(exc)

    threads = [threading.Thread(target=write) for _ in range(2)]
    for t in threads:
        t.start()
        t.join(0.05)
    for t in threads:
        t.join()
    assert outcomes[0] != "ok" or outcomes[1] != "ok"
    [conflict] = [o for o in outcomes if isinstance(o, stripe.StripeError)]
    assert conflict.http_status == 409
    assert conflict.error is not None and conflict.error.code == "idempotency_key_in_use"
