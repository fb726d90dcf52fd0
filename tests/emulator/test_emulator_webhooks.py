"""Events and signed webhook delivery: verification with the SDK, retries, duplicates,
shuffled order, re-sends."""

from __future__ import annotations

import time

import stripe
from emulator_support import Catalog, Raw, WebhookSink

from stripe_emulator import StripeEmulator


def _subscribe(client: stripe.StripeClient, catalog: Catalog) -> stripe.Subscription:
    return client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )


def test_events_list_filters_and_retrieve(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    emulator.freeze_clock()
    start = emulator.now()
    _subscribe(client, catalog)
    emulator.advance(seconds=10)
    sub = _subscribe(client, catalog)
    recent = client.v1.events.list(params={"created": {"gt": start}}).data
    assert recent and all(e.created > start for e in recent)
    assert {e.type for e in recent} >= {"customer.subscription.created", "invoice.paid"}
    created = client.v1.events.list(params={"type": "customer.subscription.created"}).data
    assert created[0].data.object.id == sub.id
    wildcard = client.v1.events.list(params={"type": "invoice.*", "limit": 100}).data
    assert wildcard and all(e.type.startswith("invoice.") for e in wildcard)
    several = client.v1.events.list(
        params={"types": ["invoice.created", "invoice.finalized"], "limit": 100}
    ).data
    assert {e.type for e in several} == {"invoice.created", "invoice.finalized"}
    page = client.v1.events.list(params={"limit": 3})
    assert page.has_more
    nxt = client.v1.events.list(params={"limit": 3, "starting_after": page.data[-1].id})
    assert not {e.id for e in page.data} & {e.id for e in nxt.data}
    one = client.v1.events.retrieve(created[0].id)
    assert one.type == "customer.subscription.created"
    assert one.request.id is not None and one.request.id.startswith("req_")


def test_signed_delivery_verifies_with_the_sdk(
    client: stripe.StripeClient, catalog: Catalog, sink: WebhookSink, emulator: StripeEmulator
) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": sink.url, "enabled_events": ["customer.subscription.updated"]}
    )
    assert endpoint.secret is not None and endpoint.secret.startswith("whsec_")
    sub = _subscribe(client, catalog)
    client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": sub["items"].data[0].id, "quantity": 4}]},
        options={"idempotency_key": "qty-4"},
    )
    assert emulator.wait_for_webhooks()
    [delivery] = sink.received
    event = stripe.Webhook.construct_event(
        delivery["body"], delivery["headers"]["Stripe-Signature"], endpoint.secret
    )
    assert event.type == "customer.subscription.updated"
    assert event.data.object["items"]["data"][0]["quantity"] == 4
    previous = event.data.previous_attributes["items"]["data"][0]
    assert previous["quantity"] == 1
    assert event.request.idempotency_key == "qty-4"
    assert delivery["headers"]["Content-Type"].startswith("application/json")


def test_wrong_secret_does_not_verify(
    client: stripe.StripeClient, catalog: Catalog, sink: WebhookSink, emulator: StripeEmulator
) -> None:
    emulator.add_webhook_endpoint(sink.url, secret="whsec_mine")
    client.v1.customers.create()
    emulator.wait_for_webhooks()
    delivery = sink.received[0]
    signature = delivery["headers"]["Stripe-Signature"]
    stripe.Webhook.construct_event(delivery["body"], signature, "whsec_mine")
    try:
        stripe.Webhook.construct_event(delivery["body"], signature, "whsec_other")
    except stripe.SignatureVerificationError:
        pass
    else:
        raise AssertionError("a wrong secret must not verify")


def test_retries_on_non_2xx_with_backoff(
    client: stripe.StripeClient, sink: WebhookSink, emulator: StripeEmulator
) -> None:
    emulator.configure(webhook_retry_base=0.05, webhook_max_attempts=4)
    emulator.add_webhook_endpoint(sink.url, secret="whsec_r", enabled_events=["customer.created"])
    sink.fail_first = 2
    client.v1.customers.create()
    assert emulator.wait_for_webhooks()
    assert [r["status"] for r in sink.received] == [500, 500, 200]
    attempts = [d["attempt"] for d in emulator.deliveries()]
    assert attempts == [1, 2, 3]
    event = client.v1.events.list(params={"type": "customer.created"}).data[0]
    assert event.pending_webhooks == 0


def test_retries_are_bounded_and_cover_connection_errors(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    emulator.configure(webhook_retry_base=0.01, webhook_max_attempts=3)
    emulator.add_webhook_endpoint("http://127.0.0.1:9/nothing-listens", secret="whsec_x")
    client.v1.customers.create()
    assert emulator.wait_for_webhooks()
    log = emulator.deliveries()
    assert [d["attempt"] for d in log] == [1, 2, 3]
    assert all(d["status"] is None and d["error"] for d in log)


def test_duplicate_delivery(
    client: stripe.StripeClient, sink: WebhookSink, emulator: StripeEmulator
) -> None:
    emulator.add_webhook_endpoint(sink.url, secret="whsec_d", enabled_events=["customer.created"])
    emulator.webhook_mode(duplicate=3)
    client.v1.customers.create()
    emulator.wait_for_webhooks()
    ids = [e["id"] for e in sink.events()]
    assert len(ids) == 3 and len(set(ids)) == 1


def test_shuffled_delivery_reorders_events(
    client: stripe.StripeClient, sink: WebhookSink, emulator: StripeEmulator
) -> None:
    emulator.add_webhook_endpoint(sink.url, secret="whsec_s", enabled_events=["customer.created"])
    emulator.webhook_mode(shuffle=True, shuffle_window=0.3)
    created = [client.v1.customers.create().id for _ in range(12)]
    emulator.wait_for_webhooks()
    delivered = [e["data"]["object"]["id"] for e in sink.events()]
    assert sorted(delivered) == sorted(created)
    assert delivered != created  # 12 random delays in one order: 1 in 479 001 600


def test_disabled_delivery_then_resend_everything(
    client: stripe.StripeClient, sink: WebhookSink, emulator: StripeEmulator, raw: Raw
) -> None:
    raw.control("POST", "webhooks/endpoints", {"url": sink.url, "secret": "whsec_c"})
    raw.control("POST", "webhooks/mode", {"enabled": False})
    client.v1.customers.create()
    client.v1.customers.create()
    time.sleep(0.1)
    assert sink.received == []
    resent = raw.control("POST", "webhooks/resend", {})
    assert resent == {"resent": 2}
    assert raw.control("POST", "webhooks/wait", {"timeout": 5}) == {"idle": True}
    assert len(sink.events()) == 2
    deliveries = raw.control("GET", "webhooks/deliveries")
    assert all(d["ok"] for d in deliveries)


def test_webhook_endpoint_crud(client: stripe.StripeClient, sink: WebhookSink) -> None:
    endpoint = client.v1.webhook_endpoints.create(
        params={"url": sink.url, "enabled_events": ["*"], "description": "seatsvc"}
    )
    listed = client.v1.webhook_endpoints.list().data
    assert [e.id for e in listed] == [endpoint.id]
    assert "secret" not in client.v1.webhook_endpoints.retrieve(endpoint.id)
    deleted = client.v1.webhook_endpoints.delete(endpoint.id)
    assert deleted.deleted is True
    assert client.v1.webhook_endpoints.list().data == []
