"""`GET /metrics`: counters as things happen, queue depths and outbox ages at scrape time."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import requests
import stripe
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from seatsvc import enqueue, metrics
from seatsvc.app import create_app
from seatsvc.billing.gateway import StripeGateway, StripePermanent, StripeTransient
from seatsvc.models import BillingOutbox, Notification, utcnow
from seatsvc.runtime import Runtime
from tests import backends
from tests.conftest import API_TOKEN, SECRET_KEY
from tests.helpers import Api
from tests.live_server import free_port
from workers.run import ObservedSimpleWorker

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    assert "version=" in response.headers["Content-Type"]
    return samples(response.get_data(as_text=True))


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_seat_request_outcomes_and_auto_adds_are_counted(api: Api, client: FlaskClient) -> None:
    before = scrape(client)
    api.agency("grow", seats=1, auto_add=True)
    api.agency("full", seats=0, auto_add=False)
    for member, agency in [("a1", "grow"), ("a2", "grow"), ("b1", "full")]:
        api.join(member, agency)
        api.seat_request(member, agency)
    api.seat_request("a1", "grow")  # already active
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    outcomes = "seatsvc_seat_requests_total"
    assert delta(outcomes, outcome="activated", reason="none") == 1
    assert delta(outcomes, outcome="auto_added", reason="none") == 1
    assert delta(outcomes, outcome="blocked", reason="no_capacity") == 1
    assert delta(outcomes, outcome="already_active", reason="none") == 1
    assert delta("seatsvc_auto_adds_total", seat_type="base") == 1


def test_stripe_calls_and_errors_are_counted_by_kind() -> None:
    def count(name: str, **labels: str) -> float:
        from prometheus_client import REGISTRY

        return REGISTRY.get_sample_value(name, labels) or 0.0

    def fail(error: Exception) -> None:
        raise error

    ok, err = (
        count("seatsvc_stripe_calls_total", result="ok"),
        count("seatsvc_stripe_calls_total", result="error"),
    )
    transient = count("seatsvc_stripe_errors_total", kind="transient")
    permanent = count("seatsvc_stripe_errors_total", kind="permanent")
    gateway = StripeGateway(stripe.StripeClient("sk_test_unused"), {})
    assert gateway._call(lambda: "fine") == "fine"
    with pytest.raises(StripeTransient):
        gateway._call(lambda: fail(stripe.RateLimitError("slow down")))
    with pytest.raises(StripePermanent):
        gateway._call(
            lambda: fail(stripe.InvalidRequestError("bad", param="items", http_status=400))
        )
    assert count("seatsvc_stripe_calls_total", result="ok") == ok + 1
    assert gateway.calls == 3
    assert count("seatsvc_stripe_calls_total", result="error") == err + 2
    assert count("seatsvc_stripe_errors_total", kind="transient") == transient + 1
    assert count("seatsvc_stripe_errors_total", kind="permanent") == permanent + 1


def test_webhook_counter_is_defined_for_the_handlers(client: FlaskClient) -> None:
    labels = {"type": "invoice.paid", "result": "processed"}
    before = value(scrape(client), "seatsvc_webhook_events_total", **labels)
    metrics.WEBHOOK_EVENTS.labels(**labels).inc()
    assert value(scrape(client), "seatsvc_webhook_events_total", **labels) == before + 1


def test_queue_depths_and_job_durations(runtime: Runtime, client: FlaskClient) -> None:
    name = f"metrics-test-{secrets.token_hex(4)}"
    queue = enqueue.queue(runtime.redis, name)
    try:
        queue.enqueue("tests.test_ops.jobs.explode", "x@example.com", "t")
        queue.enqueue("tests.test_ops.jobs.chatty", "y@example.com")
        queue.enqueue("tests.test_ops.jobs.chatty", "z@example.com")
        waiting = scrape(client)
        assert value(waiting, "seatsvc_queue_jobs", queue=name, state="queued") == 3
        assert value(waiting, "seatsvc_queue_jobs", queue=name, state="failed") == 0
        worker = ObservedSimpleWorker(
            [queue], connection=runtime.redis, serializer=enqueue.SERIALIZER
        )
        worker.work(burst=True, logging_level="ERROR")
        done = scrape(client)
        assert value(done, "seatsvc_queue_jobs", queue=name, state="queued") == 0
        assert value(done, "seatsvc_queue_jobs", queue=name, state="failed") == 1
        assert value(done, "seatsvc_redis_up") == 1
        count = "seatsvc_job_duration_seconds_count"
        chatty = "tests.test_ops.jobs.chatty"
        assert value(done, count, queue=name, func=chatty, status="finished") == 2
        assert (
            value(done, count, queue=name, func="tests.test_ops.jobs.explode", status="failed") == 1
        )
    finally:
        for key in runtime.redis.scan_iter(match=f"*{name}*", count=500):
            runtime.redis.delete(key)
        runtime.redis.srem("rq:queues", queue.key)


def test_outbox_ages_are_read_at_scrape_time(
    api: Api, client: FlaskClient, runtime: Runtime
) -> None:
    assert value(scrape(client), "seatsvc_billing_outbox_oldest_pending_seconds") == 0
    api.agency("slow", seats=2)
    api.invite("m1", "slow")
    two_minutes_ago = utcnow() - timedelta(minutes=2)
    with runtime.db.session() as session:
        session.execute(update(BillingOutbox).values(first_pending_at=two_minutes_ago))
        session.execute(update(Notification).values(created_at=two_minutes_ago))
        session.commit()
    found = scrape(client)
    assert 120 <= value(found, "seatsvc_billing_outbox_oldest_pending_seconds") < 180
    assert 120 <= value(found, "seatsvc_notification_oldest_pending_seconds") < 180
    with runtime.db.session() as session:
        session.execute(update(BillingOutbox).values(status="done", first_pending_at=None))
        session.execute(update(Notification).values(status="sent"))
        session.commit()
    found = scrape(client)
    assert value(found, "seatsvc_billing_outbox_oldest_pending_seconds") == 0
    assert value(found, "seatsvc_notification_oldest_pending_seconds") == 0


def test_a_scrape_survives_redis_being_down(runtime: Runtime) -> None:
    down = Runtime(
        config=runtime.config,
        db=runtime.db,
        redis=redis.Redis(port=free_port(), socket_connect_timeout=0.5),
        dispatcher=runtime.dispatcher,
    )
    found = scrape(create_app(runtime=down).test_client())
    assert value(found, "seatsvc_redis_up") == 0
    assert ("seatsvc_billing_outbox_oldest_pending_seconds", ()) in found


# ---- several processes -------------------------------------------------------------------


def test_fold_process_files_keeps_the_totals_and_drops_the_files(tmp_path: Path) -> None:
    """What the worker does after each forked job: the horse's files join an archive."""
    script = (
        "from prometheus_client import Counter, Histogram\n"
        "Counter('seatsvc_x', 'x', ['k']).labels(k='a').inc(3)\n"
        "Histogram('seatsvc_y_seconds', 'y').observe(0.2)\n"
        "import os; print(os.getpid())\n"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    pids = [
        int(subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                           text=True, check=True).stdout)
        for _ in range(2)
    ]  # fmt: skip

    def totals() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(tmp_path))
        from prometheus_client import generate_latest

        return samples(generate_latest(registry).decode())

    before = totals()
    assert value(before, "seatsvc_x_total", k="a") == 6
    env_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    try:
        folded = sum(metrics.fold_process_files(pid, "rqworker-1") for pid in pids)
    finally:
        if env_dir is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR")
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = env_dir
    assert folded == 4
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "counter_rqworker-1.db",
        "histogram_rqworker-1.db",
    ]
    assert totals() == before


def test_gunicorn_workers_share_their_counters(tmp_path: Path, runtime: Runtime) -> None:
    """Under gunicorn (the Procfile's config) every scrape sees every worker's counts."""
    port = free_port()
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999999.db").write_bytes(b"stale")  # a dead run's file
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("SEATSVC_", "PROMETHEUS"))},
        "DATABASE_URL": runtime.config.database_url,
        "REDIS_URL": runtime.config.redis_url or backends.service_redis_url(),
        "SEATSVC_API_TOKENS": API_TOKEN,
        "SEATSVC_SECRET_KEY": SECRET_KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    command = [
        sys.executable, "-m", "gunicorn", "seatsvc.wsgi:app",
        "-c", "python:seatsvc.gunicorn_conf",
        "--bind", f"127.0.0.1:{port}", "--workers", "3",
    ]  # fmt: skip
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as out:
        server = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log.read_text()
            try:
                if requests.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        assert not (metrics_dir / "counter_999999999.db").exists()
        headers = {"Authorization": f"Bearer {API_TOKEN}"}
        requests.put(f"{url}/v1/agencies/mp", json={"name": "MP", "admin_emails": ["a@mp.example"],
                     "trial": False}, headers=headers, timeout=10).raise_for_status()  # fmt: skip
        for n in range(6):
            requests.post(f"{url}/v1/agencies/mp/members", json={"member_id": f"m{n}",
                          "email": f"m{n}@mp.example", "source": "auto_join"},
                          headers=headers, timeout=10).raise_for_status()  # fmt: skip
            answer = requests.post(
                f"{url}/v1/agencies/mp/members/m{n}/seat-request", headers=headers, timeout=10
            )
            assert answer.json()["outcome"] == "blocked"
        # Fresh connections: the scrapes land on different workers; each sees all six.
        for _ in range(6):
            found = samples(requests.get(f"{url}/metrics", timeout=10).text)
            assert value(found, "seatsvc_seat_requests_total", outcome="blocked",
                         reason="no_capacity") == 6  # fmt: skip
        lines = [line for line in log.read_text().splitlines() if line.startswith("{")]
        assert lines, "gunicorn logs JSON lines"
        assert "a@mp.example" not in log.read_text()
    finally:
        server.terminate()
        server.wait(timeout=20)
