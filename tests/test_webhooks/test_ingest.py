"""`POST /webhooks/stripe` over real HTTP: verify, store once, enqueue, answer 200.

A bad or stale signature, a tampered or malformed body stores nothing and
queues nothing; a duplicate delivery, even a concurrent one, is stored and
handled once; event types we do not use are stored as ignored.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.test_webhooks.conftest import OLD_SECRET, SECRET, Hooks


def event(event_id: str = "evt_test_1", event_type: str = "customer.subscription.updated",
          **obj: Any) -> dict[str, Any]:  # fmt: skip
    body = {"id": "sub_unknown", "object": "subscription", "customer": "cus_unknown", **obj}
    return {
        "id": event_id,
        "object": "event",
        "created": int(time.time()),
        "type": event_type,
        "data": {"object": body},
    }


def assert_refused(hooks: Hooks, response: requests.Response, status: int = 400) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] == {400: "bad_request", 413: "payload_too_large"}[status]
    assert SECRET not in response.text and OLD_SECRET not in response.text
    assert hooks.rows() == []
    assert hooks.bill.queue.count == 0


def test_a_signed_event_is_stored_enqueued_and_answered(hooks: Hooks) -> None:
    response = hooks.post(event())
    assert response.status_code == 200
    assert response.json() == {"received": True}
    [row] = hooks.rows()
    assert (row.id, row.type, row.status, row.object_id) == (
        "evt_test_1", "customer.subscription.updated", "received", "sub_unknown"
    )  # fmt: skip
    assert row.payload["data"]["object"]["customer"] == "cus_unknown"
    assert hooks.bill.queue.job_ids == ["stripe-event-evt_5ftest_5f1"]
    assert hooks.bill.emu.requests() == []  # no Stripe call in the request


def test_the_previous_secret_still_verifies_during_a_rotation(hooks: Hooks) -> None:
    assert hooks.post(event(), secret=OLD_SECRET).status_code == 200
    assert [row.id for row in hooks.rows()] == ["evt_test_1"]


@pytest.mark.parametrize(
    "case", ["wrong secret", "stale timestamp", "tampered body", "missing header", "no v1"]
)
def test_a_bad_signature_is_refused_and_nothing_is_stored(hooks: Hooks, case: str) -> None:
    raw = json.dumps(event()).encode()
    match case:
        case "wrong secret":
            response = hooks.post(raw, secret="whsec_somebody_else")
        case "stale timestamp":
            response = hooks.post(raw, timestamp=int(time.time()) - 301)
        case "tampered body":
            from stripe_emulator.events import sign

            header = sign(raw.decode(), SECRET)
            response = hooks.post(raw.replace(b"cus_unknown", b"cus_attacker"), header=header)
        case "missing header":
            response = hooks.post(raw, header="")
        case _:
            response = hooks.post(raw, header=f"t={int(time.time())},v0=abc")
    assert_refused(hooks, response)


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[1, 2]", json.dumps({"id": "evt_x", "type": "x"}).encode(), b"\xff\xfe"],
    ids=["malformed", "not an object", "not an event", "not utf-8"],
)
def test_a_signed_body_that_is_no_event_is_refused(hooks: Hooks, body: bytes) -> None:
    from stripe_emulator.events import sign

    header = sign(body.decode(errors="replace"), SECRET)
    assert_refused(hooks, hooks.post(body, header=header))


def test_an_oversized_body_is_refused_with_413(hooks: Hooks) -> None:
    big = event(description="x" * 70_000)
    assert_refused(hooks, hooks.post(big), status=413)


def test_three_concurrent_deliveries_store_and_handle_the_event_once(hooks: Hooks) -> None:
    raw = json.dumps(event("evt_dup")).encode()
    from stripe_emulator.events import sign

    header = sign(raw.decode(), SECRET)
    barrier = threading.Barrier(3)
    statuses: list[int] = []

    def deliver() -> None:
        barrier.wait(timeout=10)
        statuses.append(hooks.post(raw, header=header).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert statuses == [200, 200, 200]
    assert hooks.bill.queue.count == 1
    hooks.bill.work()
    [row] = hooks.rows()
    assert (row.status, row.attempts) == ("ignored", 1)  # a customer we do not know
    assert row.last_error == "unknown customer and subscription"


def test_an_event_type_we_do_not_use_is_stored_as_ignored_and_not_queued(hooks: Hooks) -> None:
    assert hooks.post(event("evt_product", "product.created")).status_code == 200
    [row] = hooks.rows()
    assert row.status == "ignored"
    assert hooks.bill.queue.count == 0


def test_webhooks_without_a_configured_secret_refuse_everything(hooks: Hooks) -> None:
    from seatsvc.app import create_app
    from tests.test_webhooks.conftest import serve

    runtime = hooks.bill.runtime
    unsigned = replace(runtime, config=runtime.config.with_overrides(stripe_webhook_secrets=()))
    bare = create_app(runtime=unsigned)
    server, url = serve(bare)
    try:
        from stripe_emulator.events import sign

        raw = json.dumps(event()).encode()
        response = requests.post(
            f"{url}/webhooks/stripe",
            data=raw,
            headers={"Stripe-Signature": sign(raw.decode(), SECRET)},
            timeout=10,
        )
    finally:
        server.shutdown()
        server.server_close()
    assert_refused(hooks, response)


def test_ingestion_is_counted_by_type_and_result(hooks: Hooks) -> None:
    """`seatsvc_webhook_events_total` tells ops what Stripe sent and what became of it."""

    def count(event_type: str, result: str) -> float:
        text = requests.get(f"{hooks.url}/metrics", timeout=10).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "seatsvc_webhook_events_total"
            and sample.labels == {"type": event_type, "result": result}
        )

    kinds = [("customer.subscription.updated", "stored"),
             ("customer.subscription.updated", "duplicate"),
             ("customer.created", "ignored"), ("unverified", "rejected")]  # fmt: skip
    before = {kind: count(*kind) for kind in kinds}
    assert hooks.post(event("evt_counted")).status_code == 200
    assert hooks.post(event("evt_counted")).status_code == 200
    assert hooks.post(event("evt_other", "customer.created")).status_code == 200
    assert hooks.post(event("evt_forged"), secret="whsec_wrong").status_code == 400
    assert {kind: count(*kind) - before[kind] for kind in kinds} == dict.fromkeys(kinds, 1.0)


def test_a_timestamp_too_far_in_the_future_is_refused_like_a_stale_one(hooks: Hooks) -> None:
    """Stripe's SDK checks staleness only; a future `t=` would stay replayable until then."""
    raw = json.dumps(event()).encode()
    # A minute past the tolerance: a loaded machine may take seconds between signing and
    # checking, which must not bring the timestamp back inside it.
    for ahead in (360, 10**9):
        assert_refused(hooks, hooks.post(raw, timestamp=int(time.time()) + ahead))
    assert hooks.post(raw, timestamp=int(time.time()) + 60).status_code == 200  # clock skew


def _deep(levels: int) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for _ in range(levels):
        nested = {"n": nested}
    return nested


@pytest.mark.parametrize(
    "body",
    [
        ("[" * 10_000 + "]" * 10_000).encode(),
        ("{" + '"a":{' * 5_000 + "}" * 5_001).encode(),
        json.dumps({**event(), "created": 10**20}).encode(),
        json.dumps({**event(), "created": -1}).encode(),
        json.dumps({**event(), "created": True}).encode(),
        json.dumps(event("evt_\x00nul")).encode(),
        json.dumps(event("evt_\ud800")).encode(),
        json.dumps(event(event_type="customer.\udfffupdated")).encode(),
        json.dumps(event(description="a\x00b")).encode(),
        json.dumps(event(**{"key\ud800": 1})).encode(),
        json.dumps(event(metadata=_deep(900))).encode(),
    ],
    ids=[
        "deep list",
        "deep object",
        "created 10**20",
        "created negative",
        "created bool",
        "NUL in id",
        "surrogate in id",
        "surrogate in type",
        "NUL in object",
        "surrogate in a key",
        "object nested 900 deep",
    ],
)
def test_a_signed_but_hostile_event_is_a_bad_request(hooks: Hooks, body: bytes) -> None:
    """Signed by someone holding the secret, yet unstorable: 400 and nothing stored, no 500."""
    from stripe_emulator.events import sign

    assert_refused(hooks, hooks.post(body, header=sign(body.decode(), SECRET)))
