"""The test-control API: clock, failure injection, request log, dashboard changes,
state reset; and starting the emulator from the command line."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
import requests
import stripe
from emulator_support import API_KEY, Catalog, Raw, WebhookSink

from stripe_emulator import StripeEmulator


def test_trial_end_makes_subscription_active_with_an_invoice(
    client: stripe.StripeClient, catalog: Catalog, raw: Raw
) -> None:
    sub = client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [{"price": catalog.base.id, "quantity": 2}],
            "trial_period_days": 7,
        }
    )
    raw.control("POST", "clock/advance", {"seconds": 6 * 86400})
    assert client.v1.subscriptions.retrieve(sub.id).status == "trialing"
    will_end = client.v1.events.list(params={"type": "customer.subscription.trial_will_end"}).data
    assert len(will_end) == 1
    raw.control("POST", "clock/advance", {"seconds": 86400 + 1})
    after = client.v1.subscriptions.retrieve(sub.id, params={"expand": ["latest_invoice"]})
    assert after.status == "active"
    invoice = after.latest_invoice
    assert invoice.billing_reason == "subscription_cycle"
    assert invoice.amount_paid == 6000
    assert invoice.period_start == sub.trial_end
    updated = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert updated.data.previous_attributes["status"] == "trialing"


def test_period_end_renews_with_pending_items(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    emulator.freeze_clock()
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    item = sub["items"].data[0]
    emulator.advance(seconds=86400)
    client.v1.subscription_items.update(item.id, params={"quantity": 2})
    pending = sum(ii.amount for ii in client.v1.invoice_items.list(params={"pending": True}))
    emulator.advance(to=item.current_period_end + 5)
    renewal = client.v1.invoices.list(params={"subscription": sub.id, "limit": 1}).data[0]
    assert renewal.billing_reason == "subscription_cycle"
    assert renewal.amount_paid == 2 * 3000 + pending
    renewed = client.v1.subscription_items.retrieve(item.id)
    assert renewed.current_period_start == item.current_period_end
    # two months later: two more renewals, in order
    emulator.advance(seconds=62 * 86400)
    cycles = client.v1.invoices.list(params={"subscription": sub.id}).data
    assert [i.billing_reason for i in cycles].count("subscription_cycle") == 3


def test_cancel_at_period_end(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    emulator.advance(seconds=32 * 86400)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"


def test_injected_500_and_429(client: stripe.StripeClient, raw: Raw) -> None:
    raw.control("POST", "failures", {"status": 500, "count": 1, "path_prefix": "/v1/customers"})
    with pytest.raises(stripe.APIError):
        client.v1.customers.create()
    client.v1.customers.create()  # only the next one failed
    raw.control("POST", "failures", {"status": 429, "count": 2})
    for _ in range(2):
        with pytest.raises(stripe.RateLimitError):
            client.v1.customers.list()
    client.v1.customers.list()
    assert raw.control("GET", "failures") == []


def test_sdk_does_not_retry_a_saved_500(emulator: StripeEmulator, raw: Raw) -> None:
    """Stripe saves a 500 under the request's key and says Stripe-Should-Retry: false, so
    the SDK's own retries (same key) stop at once; the write that ran is not repeated."""
    retrying = emulator.client(API_KEY, max_network_retries=2)
    emulator.fail_next(500, count=1, path_prefix="/v1/customers", execute=True)
    with pytest.raises(stripe.APIError) as info:
        retrying.v1.customers.create(params={"email": "retry@example.com"})
    assert info.value.headers is not None
    assert info.value.headers["stripe-should-retry"] == "false"
    posts = emulator.requests("/v1/customers", "POST")
    assert [(p["status"], p["injected"]) for p in posts] == [(500, "error_after")]
    listed = raw.call("GET", "/v1/customers", params={"email": "retry@example.com"}).json()
    assert len(listed["data"]) == 1  # applied once, though the client saw a 500


def test_injected_timeout_drops_the_connection(emulator: StripeEmulator) -> None:
    impatient = emulator.client(
        API_KEY, http_client=stripe.RequestsClient(timeout=0.5), max_network_retries=0
    )
    emulator.fail_next("timeout", seconds=1.0)
    with pytest.raises(stripe.APIConnectionError):
        impatient.v1.customers.list()
    emulator.fail_next("timeout", seconds=0.05)
    with pytest.raises(stripe.APIConnectionError):
        emulator.client(API_KEY).v1.customers.list()  # dropped without an answer


def test_latency_knob(emulator: StripeEmulator, client: stripe.StripeClient, raw: Raw) -> None:
    raw.control("POST", "latency", {"seconds": 0.2})
    started = time.monotonic()
    client.v1.customers.list()
    assert time.monotonic() - started >= 0.2
    raw.control("POST", "latency", {"seconds": 0})


def test_request_log_counts_stripe_calls(
    client: stripe.StripeClient, catalog: Catalog, raw: Raw
) -> None:
    raw.control("DELETE", "requests")
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]},
        options={"idempotency_key": "create-sub"},
    )
    client.v1.subscriptions.retrieve(sub.id)
    log = raw.control("GET", "requests")
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("POST", "/v1/subscriptions", 200),
        ("GET", f"/v1/subscriptions/{sub.id}", 200),
    ]
    assert log[0]["idempotency_key"] == "create-sub"
    assert log[0]["params"]["items"] == [{"price": catalog.base.id}]
    assert isinstance(log[0]["time"], int)
    only_posts = requests.get(
        f"{raw.base_url}/_emulator/requests", params={"method": "POST"}, timeout=5
    ).json()
    assert len(only_posts) == 1


def test_dashboard_change_emits_the_same_events(
    client: stripe.StripeClient, catalog: Catalog, raw: Raw, emulator: StripeEmulator
) -> None:
    sub = client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [{"price": catalog.base.id, "quantity": 3}],
        }
    )
    item = sub["items"].data[0]
    raw.control("DELETE", "requests")
    changed = raw.control("POST", f"dashboard/subscription_items/{item.id}", {"quantity": 7})
    assert changed["items"]["data"][0]["quantity"] == 7
    assert raw.control("GET", "requests") == []  # not an API call
    event = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert event.data.previous_attributes["items"]["data"][0]["quantity"] == 3
    assert client.v1.subscription_items.retrieve(item.id).quantity == 7


def test_state_reset_and_objects(client: stripe.StripeClient, raw: Raw) -> None:
    customer = client.v1.customers.create()
    assert raw.control("GET", f"objects/{customer.id}")["id"] == customer.id
    assert raw.control("GET", "state")["counts"]["customer"] == 1
    raw.control("POST", "reset")
    assert raw.control("GET", "state")["counts"] == {}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.customers.retrieve(customer.id)


def test_clock_freeze_and_advance_to(raw: Raw) -> None:
    frozen = raw.control("POST", "clock/freeze", {"frozen": True})
    time.sleep(1.1)
    assert raw.control("GET", "clock")["now"] == frozen["now"]
    moved = raw.control("POST", "clock/advance", {"to": frozen["now"] + 3600})
    assert moved["now"] == frozen["now"] + 3600
    bad = requests.post(f"{raw.base_url}/_emulator/clock/advance", json={}, timeout=5)
    assert bad.status_code == 400


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_command_line_server_serves_and_signs_on_localhost(sink: WebhookSink) -> None:
    port = _free_port()
    env = dict(os.environ)
    command = [sys.executable, "-m", "stripe_emulator", "--port", str(port)]
    command += ["--webhook-url", sink.url, "--webhook-secret", "whsec_cli"]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        started = time.monotonic()
        client = stripe.StripeClient(
            "sk_test_cli", base_addresses={"api": f"http://127.0.0.1:{port}"}, max_network_retries=0
        )
        while True:
            try:
                assert client.v1.customers.list().data == []
                break
            except stripe.APIConnectionError:
                if time.monotonic() - started > 5:
                    raise
                time.sleep(0.05)
        client.v1.customers.create()
        [event] = sink.wait_for(1)
        assert event["type"] == "customer.created"
        signature = sink.received[0]["headers"]["Stripe-Signature"]
        stripe.Webhook.construct_event(sink.received[0]["body"], signature, "whsec_cli")
    finally:
        proc.terminate()
        proc.wait(timeout=5)
