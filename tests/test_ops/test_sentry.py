"""Sentry gets errors from views and jobs, and never an email address or a token.

The SDK runs for real with a custom transport that keeps the envelopes it would
have sent (no network). The control test switches the scrubber off and finds the
very strings the other tests look for, so they could fail.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sentry_sdk
from flask import Flask
from rq import SimpleWorker
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport

from seatsvc import enqueue, observability, redaction
from seatsvc.runtime import Runtime

DSN = "https://public@127.0.0.1/1"
EMAIL = "clinician.jane@clinic.example"
BEARER = "tok_" + "b" * 30
STRIPE_KEY = "sk_live_" + "k" * 24
RESTRICTED_KEY = "rk_test_" + "r" * 24
WEBHOOK_SECRET = "whsec_" + "w" * 24
INVITE_TOKEN = "0" * 32 + "." + "a1" * 32
SECRETS = [EMAIL, BEARER, STRIPE_KEY, RESTRICTED_KEY, WEBHOOK_SECRET, INVITE_TOKEN, "a1" * 32]


class CapturingTransport(Transport):
    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def text(self) -> str:
        return "\n".join(
            envelope.serialize().decode("utf-8", "replace") for envelope in self.envelopes
        )

    def events(self) -> list[dict[str, Any]]:
        found = []
        for envelope in self.envelopes:
            for item in envelope.items:
                if item.type == "event":
                    found.append(json.loads(item.payload.get_bytes()))
        return found


@pytest.fixture
def sentry() -> Iterator[Callable[..., CapturingTransport]]:
    def start(scrub: bool = True) -> CapturingTransport:
        transport = CapturingTransport()
        observability.init_sentry(DSN, transport=transport)
        if not scrub:  # the control: the same SDK without our hooks
            client = sentry_sdk.get_client()
            client.options["before_send"] = None
            client.options["before_breadcrumb"] = None
        return transport

    yield start
    sentry_sdk.get_client().close()
    sentry_sdk.init()  # no DSN: off for the tests that follow


def failing_view_app(app: Flask) -> Flask:
    def leaky(who: str) -> Any:
        email, token = EMAIL, BEARER  # locals Sentry would show
        observability.structlog.get_logger("tests").info("about to fail", who=email)
        raise RuntimeError(
            f"cannot bill {email} with {STRIPE_KEY} / {RESTRICTED_KEY} / {WEBHOOK_SECRET}; "
            f"invite {INVITE_TOKEN}; Authorization: Bearer {token}"
        )

    app.add_url_rule("/leaky/<who>", "leaky", leaky)
    return app


def request_the_failing_view(app: Flask) -> None:
    response = app.test_client().get(
        f"/leaky/{EMAIL}?token={BEARER}&email={EMAIL}",
        headers={"Authorization": f"Bearer {BEARER}", "Cookie": f"session={BEARER}"},
    )
    assert response.status_code == 500
    assert response.get_json()["error"]["code"] == "internal_error"


def run_failing_job(runtime: Runtime) -> None:
    queue = enqueue.queue(runtime.redis, f"sentry-test-{secrets.token_hex(4)}")
    try:
        queue.enqueue("tests.test_ops.jobs.explode", EMAIL, BEARER)
        worker = SimpleWorker([queue], connection=runtime.redis, serializer=enqueue.SERIALIZER)
        worker.work(burst=True, logging_level="ERROR")
        assert queue.failed_job_registry.count == 1
    finally:
        for key in runtime.redis.scan_iter(match=f"*{queue.name}*", count=500):
            runtime.redis.delete(key)
        runtime.redis.srem("rq:queues", queue.key)


def assert_clean(transport: CapturingTransport) -> None:
    text = transport.text()
    assert transport.events(), "nothing was captured"
    for secret in SECRETS:
        assert secret not in text, secret


def test_an_error_in_a_view_reaches_sentry_without_personal_data(
    sentry: Callable[..., CapturingTransport], app: Flask
) -> None:
    transport = sentry()
    request_the_failing_view(failing_view_app(app))
    sentry_sdk.flush()
    assert_clean(transport)
    (event,) = [e for e in transport.events() if e.get("exception")]
    assert event["exception"]["values"][-1]["type"] == "RuntimeError"
    assert "[email]" in event["exception"]["values"][-1]["value"]
    assert event.get("user") in (None, {})  # send_default_pii is off


def test_an_error_in_a_job_reaches_sentry_without_its_arguments(
    sentry: Callable[..., CapturingTransport], runtime: Runtime
) -> None:
    transport = sentry()
    run_failing_job(runtime)
    sentry_sdk.flush()
    assert_clean(transport)
    (event,) = [e for e in transport.events() if "rq-job" in e.get("extra", {})]
    rq_job = event["extra"]["rq-job"]
    assert rq_job["func"] == "tests.test_ops.jobs.explode"
    assert rq_job["description"] == "tests.test_ops.jobs.explode([redacted])"


def test_job_arguments_keep_ids_and_numbers_only() -> None:
    event = {
        "extra": {
            "rq-job": {
                "func": "workers.billing.sync_agency",
                "args": ["clinic-7", 42, EMAIL, BEARER, "a" * 30, "key_abc"],
                "kwargs": {"agency_id": "demo", "token": "x"},
            }
        }
    }
    job = observability.before_send(event, {})["extra"]["rq-job"]  # type: ignore[index]
    assert job["args"] == ["clinic-7", 42] + ["[redacted]"] * 4
    assert job["kwargs"] == {"agency_id": "demo", "token": "[redacted]"}
    assert job["description"] == (
        "workers.billing.sync_agency('clinic-7', 42, '[redacted]', '[redacted]', '[redacted]', "
        "'[redacted]', agency_id='demo', token='[redacted]')"
    )


def test_breadcrumbs_are_scrubbed(sentry: Callable[..., CapturingTransport]) -> None:
    transport = sentry()
    sentry_sdk.add_breadcrumb(message=f"mail to {EMAIL}", data={"api_key": STRIPE_KEY})
    sentry_sdk.capture_message("something happened")
    sentry_sdk.flush()
    assert_clean(transport)
    (event,) = transport.events()
    crumbs = event["breadcrumbs"]["values"]
    assert any(crumb.get("message") == "mail to [email]" for crumb in crumbs)


def test_control_without_the_scrubber_the_secrets_would_be_sent(
    sentry: Callable[..., CapturingTransport], app: Flask, runtime: Runtime
) -> None:
    transport = sentry(scrub=False)
    request_the_failing_view(failing_view_app(app))
    run_failing_job(runtime)
    sentry_sdk.flush()
    text = transport.text()
    assert EMAIL in text
    assert BEARER in text
    assert STRIPE_KEY in text
    assert INVITE_TOKEN in text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("to a.b+c@x.example.org now", "to [email] now"),
        ("Authorization: Bearer abc.DEF-123", "Authorization: Bearer [redacted]"),
        (f"key {STRIPE_KEY}", "key [redacted]"),
        (f"{WEBHOOK_SECRET} and {RESTRICTED_KEY}", "[redacted] and [redacted]"),
        (f"/accept?token={INVITE_TOKEN}", "/accept?token=[redacted]"),
        (f"link {INVITE_TOKEN} sent", "link [redacted] sent"),
        ("agency clinic-1 member c1: 3 seats", "agency clinic-1 member c1: 3 seats"),
    ],
)
def test_redact(raw: str, clean: str) -> None:
    assert redaction.redact(raw) == clean


def test_scrub_walks_nested_values_and_drops_sensitive_keys() -> None:
    event = {
        "request": {"headers": {"Authorization": "Basic b3BzOnB3", "X-Request-Id": "r1"}},
        "extra": {"args": [EMAIL, (STRIPE_KEY,)], "password": "hunter2", "count": 3},
    }
    assert observability.scrub(event) == {
        "request": {"headers": {"Authorization": "[redacted]", "X-Request-Id": "r1"}},
        "extra": {"args": ["[email]", ("[redacted]",)], "password": "[redacted]", "count": 3},
    }
