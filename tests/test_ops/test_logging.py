"""JSON log lines; the request id travels from the HTTP request into the jobs it causes.

A request with `X-Request-Id` invites a clinician: the response echoes the id, the
send job carries it in `job.meta`, and the worker's log lines while running that
job carry it too. No email address reaches any line.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from flask.testing import FlaskClient
from rq.job import Job

from seatsvc import enqueue
from seatsvc.observability import configure_logging
from tests.conftest import API_TOKEN
from tests.helpers import Api
from tests.test_notifier.conftest import (  # noqa: F401  (fixtures)
    Notifier,
    Sink,
    make_sink,
    notifier_factory,
    redis_conn,
    redis_url,
)
from workers.run import ObservedSimpleWorker

REQUEST_ID = "req-7f3a9c-e2e"
MEMBER_EMAIL = "amy.clinician@staff.example"


@pytest.fixture
def log_lines() -> Any:
    stream = io.StringIO()
    configure_logging(stream=stream)

    def lines() -> list[dict[str, Any]]:
        text = stream.getvalue()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    lines.text = stream.getvalue  # type: ignore[attr-defined]
    yield lines
    configure_logging()


def invite(client: FlaskClient, headers: dict[str, str]) -> Any:
    return client.post(
        "/v1/agencies/clinic/members",
        json={"member_id": "amy", "email": MEMBER_EMAIL, "source": "invite", "seat_type": "base"},
        headers={"Authorization": f"Bearer {API_TOKEN}", **headers},
    )


def test_the_request_id_reaches_the_jobs_log_lines(
    api: Api,
    client: FlaskClient,
    notifier_factory: Callable[..., tuple[Notifier, Sink]],  # noqa: F811
    log_lines: Any,
) -> None:
    notifier, sink = notifier_factory()
    api.agency("clinic", seats=1)

    response = invite(client, {"X-Request-Id": REQUEST_ID})
    assert response.status_code == 201, response.get_json()
    assert response.headers["X-Request-Id"] == REQUEST_ID

    (job_id,) = notifier.queue.get_job_ids()
    job = Job.fetch(job_id, connection=notifier.redis, serializer=enqueue.SERIALIZER)
    assert job.meta["request_id"] == REQUEST_ID

    structlog.contextvars.clear_contextvars()  # the worker starts with nothing bound
    worker = ObservedSimpleWorker(
        [notifier.queue], connection=notifier.redis, serializer=enqueue.SERIALIZER
    )
    worker.work(burst=True, logging_level="INFO")
    assert len(sink.messages) == 1

    lines = log_lines()
    sent = [line for line in lines if "sent to 1 recipient" in line["event"]]
    assert len(sent) == 1
    assert sent[0]["request_id"] == REQUEST_ID
    assert sent[0]["job_id"] == job_id
    assert sent[0]["logger"] == "seatsvc.mail.delivery"
    assert sent[0]["level"] == "info"
    assert sent[0]["timestamp"].endswith("Z")
    during = [line for line in lines if line.get("job_id") == job_id]
    assert {line["logger"] for line in during} >= {"rq.worker", "seatsvc.mail.delivery"}
    assert all(line["request_id"] == REQUEST_ID for line in during)
    # Nothing bound once the job is done.
    assert structlog.contextvars.get_contextvars() == {}
    assert MEMBER_EMAIL not in log_lines.text()
    assert "admin@clinic.example" not in log_lines.text()


def test_billing_jobs_carry_the_request_id_too(
    redis_conn: Any,  # noqa: F811
) -> None:
    queue = enqueue.queue(redis_conn, f"ops-meta-{secrets.token_hex(4)}")
    try:
        structlog.contextvars.bind_contextvars(request_id=REQUEST_ID)
        assert enqueue.enqueue_once(
            queue, enqueue.SYNC_JOB, "ops-meta-a", ("clinic",), follow_up=True
        )
        structlog.contextvars.clear_contextvars()
        assert enqueue.enqueue_once(
            queue, enqueue.SYNC_JOB, "ops-meta-b", ("clinic",), follow_up=True
        )
        tagged = Job.fetch("ops-meta-a", connection=redis_conn, serializer=enqueue.SERIALIZER)
        untagged = Job.fetch("ops-meta-b", connection=redis_conn, serializer=enqueue.SERIALIZER)
        # (Sentry's RQ integration, once loaded, adds its trace headers beside ours.)
        assert tagged.meta["request_id"] == REQUEST_ID
        assert "request_id" not in untagged.meta  # a sweep or a cron job: no request caused it
    finally:
        structlog.contextvars.clear_contextvars()
        for job_id in ("ops-meta-a", "ops-meta-b"):
            redis_conn.delete(f"rq:job:{job_id}")
        for key in redis_conn.scan_iter(match=f"*{queue.name}*", count=500):
            redis_conn.delete(key)
        redis_conn.srem("rq:queues", queue.key)


def test_a_missing_or_unusable_request_id_is_replaced(client: FlaskClient) -> None:
    fresh = client.get("/healthz")
    generated = fresh.headers["X-Request-Id"]
    assert len(generated) == 32
    assert client.get("/healthz").headers["X-Request-Id"] != generated
    for bad in ("has space", "x" * 129, "tab\there", "<script>", "a/../b"):
        echoed = client.get("/healthz", headers={"X-Request-Id": bad}).headers["X-Request-Id"]
        assert echoed != bad
        assert len(echoed) == 32


def test_every_line_is_json_and_personal_data_is_redacted(log_lines: Any) -> None:
    structlog.contextvars.bind_contextvars(request_id="r-1")
    try:
        logging.getLogger("seatsvc.test").warning("mail for %s failed", MEMBER_EMAIL)
        structlog.get_logger("seatsvc.test").info(
            "charged", email=MEMBER_EMAIL, key="sk_test_abcdefghijklmnop", seats=3
        )
        try:
            raise ValueError(f"token=abc123secret for {MEMBER_EMAIL}")
        except ValueError:
            logging.getLogger("seatsvc.test").exception("boom")
    finally:
        structlog.contextvars.clear_contextvars()
    first, second, third = log_lines()
    assert first["event"] == "mail for [email] failed"
    assert first["level"] == "warning"
    assert first["request_id"] == "r-1"
    assert second["email"] == "[email]"
    assert second["key"] == "[redacted]"
    assert second["seats"] == 3
    assert "ValueError: token=[redacted] for [email]" in third["exception"]
    assert MEMBER_EMAIL not in log_lines.text()
    assert "abc123secret" not in log_lines.text()
