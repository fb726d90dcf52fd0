"""Idempotency as Stripe does it, failures included (https://docs.stripe.com/api/idempotent_requests):
the first result under a key is saved and replayed for 24 h, 500s included; results that never
reached an endpoint (validation errors, 429 lock_timeout) are not saved; a key names one body."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from emulator_support import Catalog, Raw

from stripe_emulator import StripeEmulator


def _sub(client: stripe.StripeClient, catalog: Catalog, quantity: int = 1) -> Any:
    return client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [{"price": catalog.base.id, "quantity": quantity}],
        }
    )


def _set_quantity(client: stripe.StripeClient, sub: Any, quantity: int, key: str) -> Any:
    item = sub["items"].data[0]
    return client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": item.id, "quantity": quantity}]},
        options={"idempotency_key": key},
    )


def _quantity(emulator: StripeEmulator, sub: Any) -> int:
    found = emulator.get(sub.id)
    assert found is not None
    return int(found["items"]["data"][0]["quantity"])


def test_a_500_before_the_write_is_saved_and_replayed(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    emulator.fail_next(mode="error_before", path="/v1/customers", method="POST")
    for _ in range(2):
        with pytest.raises(stripe.APIError) as info:
            client.v1.customers.create(params={"name": "x"}, options={"idempotency_key": "c-1"})
        assert info.value.http_status == 500
    assert info.value.headers is not None
    assert info.value.headers["idempotent-replayed"] == "true"
    assert info.value.headers["stripe-should-retry"] == "false"
    assert emulator.objects("customer") == []  # nothing was applied
    log = emulator.requests("/v1/customers", "POST")
    assert [(e["status"], e["replayed"], e["injected"]) for e in log] == [
        (500, False, "error_before"),
        (500, True, None),
    ]
    # a new key is a new request
    created = client.v1.customers.create(params={"name": "x"}, options={"idempotency_key": "c-2"})
    assert [c["id"] for c in emulator.objects("customer")] == [created.id]


def test_a_500_after_the_write_keeps_the_write_and_is_replayed(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = _sub(client, catalog)
    emulator.fail_next(mode="error_after", path=f"/v1/subscriptions/{sub.id}", method="POST")
    with pytest.raises(stripe.APIError):
        _set_quantity(client, sub, 4, "qty-4")
    assert _quantity(emulator, sub) == 4  # applied, although the client saw a 500
    assert len(emulator.events("customer.subscription.updated")) == 1
    with pytest.raises(stripe.APIError) as replay:
        _set_quantity(client, sub, 4, "qty-4")
    assert replay.value.headers is not None
    assert replay.value.headers["idempotent-replayed"] == "true"
    assert len(emulator.events("customer.subscription.updated")) == 1  # not run again
    again = _set_quantity(client, sub, 4, "qty-4-new-key")
    assert again["items"].data[0].quantity == 4


def test_a_saved_500_is_replayed_for_24_hours_of_emulated_time(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    emulator.freeze_clock()
    emulator.fail_next(500, path_prefix="/v1/customers", method="POST")
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"name": "y"}, options={"idempotency_key": "day"})
    emulator.advance(seconds=24 * 3600 - 60)
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"name": "y"}, options={"idempotency_key": "day"})
    emulator.advance(seconds=120)  # now older than 24 h: pruned, the key runs anew
    created = client.v1.customers.create(params={"name": "y"}, options={"idempotency_key": "day"})
    assert created.name == "y"
    assert len(emulator.objects("customer")) == 1


@pytest.mark.parametrize(
    "arm",
    [
        {"mode": "lost_answer"},
        {"status": "timeout", "execute": True, "seconds": 0.05},  # the legacy spelling
    ],
)
def test_a_lost_answer_is_applied_saved_and_replayed(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator, arm: dict[str, Any]
) -> None:
    sub = _sub(client, catalog, quantity=2)
    emulator.fail_next(path=f"/v1/subscriptions/{sub.id}", method="POST", **arm)
    with pytest.raises(stripe.APIConnectionError):
        _set_quantity(client, sub, 3, "lost-1")
    assert _quantity(emulator, sub) == 3
    retried = _set_quantity(client, sub, 3, "lost-1")
    assert retried["items"].data[0].quantity == 3
    assert retried.last_response.headers["Idempotent-Replayed"] == "true"
    log = emulator.requests(f"/v1/subscriptions/{sub.id}", "POST")
    assert [(e["status"], e["replayed"]) for e in log] == [("dropped", False), (200, True)]
    assert len(emulator.store.quantity_updates[sub.id]) == 1  # one real update


def test_injected_lock_timeout_is_not_saved(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = _sub(client, catalog)
    emulator.fail_next(mode="lock_timeout", path=f"/v1/subscriptions/{sub.id}")
    with pytest.raises(stripe.RateLimitError) as info:
        _set_quantity(client, sub, 5, "locked")
    err = info.value
    assert err.http_status == 429
    assert err.error is not None and err.error.code == "lock_timeout"
    assert err.error.type == "invalid_request_error"
    assert (err.error.message or "").startswith("This object cannot be accessed right now")
    assert err.headers is not None and err.headers["stripe-should-retry"] == "true"
    assert _quantity(emulator, sub) == 1
    retried = _set_quantity(client, sub, 5, "locked")  # same key: runs, not a replay
    assert retried["items"].data[0].quantity == 5
    assert "Idempotent-Replayed" not in retried.last_response.headers


def test_the_sdk_retries_an_injected_lock_timeout_by_itself(
    emulator: StripeEmulator, catalog: Catalog, client: stripe.StripeClient
) -> None:
    sub = _sub(client, catalog)
    retrying = emulator.client(max_network_retries=1)
    emulator.fail_next(mode="lock_timeout", path=f"/v1/subscriptions/{sub.id}", method="POST")
    assert _set_quantity(retrying, sub, 2, "k")["items"].data[0].quantity == 2
    log = emulator.requests(f"/v1/subscriptions/{sub.id}", "POST")
    assert [e["status"] for e in log] == [429, 200]


def test_same_key_other_parameters_is_refused_with_stripes_words(
    client: stripe.StripeClient,
) -> None:
    client.v1.customers.create(params={"email": "a@example.com"}, options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError) as info:
        client.v1.customers.create(
            params={"email": "b@example.com"}, options={"idempotency_key": "k"}
        )
    assert info.value.http_status == 400
    assert info.value.user_message == (
        "Keys for idempotent requests can only be used with the same parameters they were first "
        "used with. Try using a key other than 'k' if you meant to execute a different request."
    )


def test_same_key_on_another_endpoint_is_refused(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    client.v1.customers.create(params={"name": "n"}, options={"idempotency_key": "k-ep"})
    with pytest.raises(stripe.IdempotencyError) as info:
        client.v1.customers.update(
            catalog.customer.id, params={"name": "n"}, options={"idempotency_key": "k-ep"}
        )
    assert info.value.user_message == (
        "Keys for idempotent requests can only be used for the same endpoint they were first "
        f"used for ('/v1/customers/{catalog.customer.id}' vs '/v1/customers'). Try using a key "
        "other than 'k-ep' if you meant to execute a different request."
    )


def test_a_validation_failure_is_not_saved_under_its_key(raw: Raw) -> None:
    headers = {"Idempotency-Key": "bad-then-good"}
    bad = raw.call("POST", "/v1/customers", data={"emial": "x@example.com"}, headers=headers)
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "parameter_unknown"
    good = raw.call("POST", "/v1/customers", data={"email": "x@example.com"}, headers=headers)
    assert good.status_code == 200
    assert "Idempotent-Replayed" not in good.headers


def test_an_injected_failure_skips_replays_and_invalid_calls(
    client: stripe.StripeClient, emulator: StripeEmulator, raw: Raw
) -> None:
    """A rule hits a call that reaches the endpoint: a replay or a 400 does not use it up."""
    client.v1.customers.create(params={"name": "a"}, options={"idempotency_key": "first"})
    emulator.fail_next(mode="error_before", path="/v1/customers", method="POST")
    client.v1.customers.create(params={"name": "a"}, options={"idempotency_key": "first"})
    invalid = raw.call("POST", "/v1/customers", data={"nmae": "b"})
    assert invalid.status_code == 400
    assert len(emulator.failures()) == 1
    with pytest.raises(stripe.APIError):
        client.v1.customers.create(params={"name": "b"})
    assert emulator.failures() == []
