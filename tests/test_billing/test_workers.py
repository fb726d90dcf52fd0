"""Billing under process trouble: a worker SIGKILLed mid-sync, workers racing on one
agency, Redis going away while seat-requests arrive, and the `flask billing` commands.

Workers here are the Procfile's `python -m workers.run worker` processes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
import redis
import stripe
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from seatsvc import enqueue
from seatsvc.app import create_app
from tests import backends
from tests.backends import build_runtime
from tests.conftest import API_TOKEN
from tests.helpers import Api
from tests.live_server import Call, in_threads, start_gunicorn
from tests.test_billing.conftest import (
    Billing,
    RedisServer,
    finish,
    kill_group,
    postgres_only,
    redis_server_available,
    stop_group,
)
from workers import billing, context

pytestmark = pytest.mark.slow


def wait_for(done: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what or done}"
        time.sleep(0.02)


def auto_add(bill: Billing, agency_id: str, member_ids: list[str]) -> None:
    for outcome in bill.join_and_login(member_ids, agency_id):
        assert outcome["outcome"] == "auto_added", outcome


def test_a_worker_killed_mid_sync_then_rerun_makes_exactly_one_change(bill: Billing) -> None:
    postgres_only(bill.backend)
    bill.active_agency("crash", seats=2)
    agency = bill.agency("crash")
    sub_id, customer_id = agency.stripe_subscription_id, agency.stripe_customer_id
    assert sub_id and customer_id
    sub_path = f"/v1/subscriptions/{sub_id}"
    lines_before = {line["id"] for line in bill.pending_lines(customer_id)}
    updates_before = len(bill.emu.store.quantity_updates[sub_id])
    bill.api.join("first", "crash")
    bill.api.join("second", "crash")
    bill.api.seat_request("first", "crash")
    bill.api.seat_request("second", "crash")
    bill.emu.configure(write_latency=2.0)  # Stripe holds the update while we strike
    auto_add(bill, "crash", ["amy", "bob", "cyd"])  # 5 seats wanted; the job is queued

    worker = bill.spawn_worker()
    deadline = time.monotonic() + 40
    try:
        while not any(e["status"] is None for e in bill.emu.requests(sub_path, "POST")):
            alive = worker.poll() is None
            if not alive or time.monotonic() > deadline:
                kill_group(worker)
                output = worker.stdout.read().decode(errors="replace") if worker.stdout else ""
                pytest.fail(f"the update never reached Stripe (alive={alive}):\n{output[-3000:]}")
            time.sleep(0.02)
    finally:
        kill_group(worker)
    # Stripe carries out the update of the dead worker; nobody is left to record it.
    wait_for(lambda: all(e["status"] for e in bill.emu.requests(sub_path, "POST")), what="Stripe")
    bill.emu.configure(write_latency=0.0)
    assert bill.stripe_quantity("crash") == 5
    assert bill.pools("crash")["base"].billed == 2
    assert bill.outbox("crash").status == "pending"
    job_id = f"billing-sync-{enqueue.rq_safe('crash')}"
    started = StartedJobRegistry(queue=bill.queue)
    assert job_id in started.get_job_ids()

    # What ops (or rq's own maintenance) does with an abandoned job: clean up, run it again.
    # Cleanup hands it to its RQ Retry; the dead worker still holds rq's scheduler lock
    # for a while, so ops run the scheduled retry now from the registry.
    started.cleanup(timestamp=time.time() + 3600)
    scheduled = ScheduledJobRegistry(queue=bill.queue)
    assert job_id in scheduled.get_job_ids()
    scheduled.requeue(job_id)
    bill.work_until(lambda: bill.in_sync("crash"), timeout=30)  # waits out the dead lock

    calls = bill.emu.requests(sub_path, "POST")
    assert [(e["status"], e["replayed"]) for e in calls] == [(200, False), (200, True)]
    assert calls[0]["idempotency_key"] == calls[1]["idempotency_key"]
    assert len(bill.emu.store.quantity_updates[sub_id]) == updates_before + 1
    assert bill.stripe_quantity("crash") == 5
    new_lines = [line for line in bill.pending_lines(customer_id) if line["id"] not in lines_before]
    # One change 2 -> 5: unused time on 2 seats, remaining time on 5, net three seats.
    assert sorted(line["quantity"] for line in new_lines) == [2, 5]
    (credit,) = [line for line in new_lines if line["amount"] < 0]
    (charge,) = [line for line in new_lines if line["amount"] > 0]
    per_seat = charge["amount"] / 5
    assert abs((charge["amount"] + credit["amount"]) - 3 * per_seat) <= 1
    seats = bill.api.seats("crash")
    assert (seats["purchased"], seats["used"], seats["billed"]) == (5, 5, 5)


def test_two_workers_syncing_one_agency_never_collide_at_stripe(bill: Billing) -> None:
    postgres_only(bill.backend)
    bill.active_agency("race")
    sub_id = str(bill.agency("race").stripe_subscription_id)
    bill.emu.configure(write_latency=0.3)

    # The emulator does answer two concurrent writes to one subscription with a 429.
    client = bill.client
    errors: list[str] = []

    def touch(value: str) -> None:
        try:
            client.v1.subscriptions.update(sub_id, {"metadata": {"probe": value}})
        except stripe.RateLimitError as error:
            errors.append(str((error.json_body or {}).get("error", {}).get("code")))

    probes = [threading.Thread(target=touch, args=(str(i),)) for i in range(2)]
    for probe in probes:
        probe.start()
    for probe in probes:
        probe.join()
    assert errors == ["lock_timeout"]
    bill.emu.clear_requests()

    # Many jobs for one agency, two worker processes, seat changes arriving meanwhile.
    for index in range(6):
        bill.queue.enqueue(
            billing.sync_agency, "race", job_id=f"race-sync-{index}", retry=enqueue.BILLING_RETRY
        )
    workers = [bill.spawn_worker("--burst") for _ in range(2)]
    try:
        for round_ in range(4):
            auto_add(bill, "race", [f"m{round_}a", f"m{round_}b"])
            bill.queue.enqueue(billing.sync_agency, "race", job_id=f"race-more-{round_}")
            time.sleep(0.4)
        outputs = [finish(worker) for worker in workers]
    finally:
        for worker in workers:
            kill_group(worker)
        bill.emu.configure(write_latency=0.0)
    bill.work_until(lambda: bill.in_sync("race"))

    statuses = [e["status"] for e in bill.emu.requests()]
    assert not {409, 429} & set(statuses), statuses  # lock_timeout, idempotency_key_in_use
    assert FailedJobRegistry(queue=bill.queue).get_job_ids() == []
    assert bill.stripe_quantity("race") == 8
    assert 1 <= len(bill.quantity_updates("race")) <= 8
    for output in outputs:
        assert "Traceback" not in output, output[-3000:]
        assert "lock_timeout" not in output, output[-3000:]


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own: stopping it touches nobody else."""
    if not redis_server_available():
        if backends.IN_CI:
            pytest.fail("redis-server is needed to test Redis going down")
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()
    yield server
    server.stop()


def test_redis_down_delays_billing_and_loses_or_doubles_nothing(
    bill: Billing, private_redis: RedisServer
) -> None:
    runtime = build_runtime(bill.runtime.config.with_overrides(redis_url=private_redis.url))
    connection = redis.Redis.from_url(private_redis.url)
    api = Api(create_app(runtime=runtime).test_client(), API_TOKEN)
    local = Billing(runtime, connection, bill.emu, api, bill.backend, private_redis.url)
    context.install(runtime)
    try:
        local.active_agency("down")
        sub_id = str(local.agency("down").stripe_subscription_id)

        private_redis.stop()
        members = [f"m{i}" for i in range(6)]
        for member in members:  # the answers come from the database alone
            api.join(member, "down")
            assert api.seat_request(member, "down")["outcome"] == "auto_added"
        api.ok("PUT", "/v1/agencies/down/seats/voice", {"quantity": 2})
        assert local.outbox("down").status == "pending"
        assert bill.emu.requests(f"/v1/subscriptions/{sub_id}", "POST") == []

        private_redis.start()  # empty: every enqueue while it was down was lost
        assert local.queue.count == 0
        assert billing.requeue_pending_syncs(0) == 1  # the scheduler's minute sweep
        local.work_until(lambda: local.in_sync("down"))

        assert local.stripe_quantity("down", "base") == 6
        assert local.stripe_quantity("down", "voice") == 2
        assert len(local.quantity_updates("down")) == 1
        assert billing.requeue_pending_syncs(0) == 0
        local.work()
        assert len(local.quantity_updates("down")) == 1
        seats = api.ok("GET", "/v1/agencies/down")["seats"]
        assert (seats["base"]["billed"], seats["voice"]["billed"]) == (6, 2)
    finally:
        context.install(bill.runtime)
        context.install_gateway(runtime, None)
        connection.close()
        runtime.db.dispose()


def test_flask_billing_sync_and_drain_commands(bill: Billing) -> None:
    bill.api.agency("cli-a", trial=False)
    bill.api.agency("cli-b", trial=True)
    bill.queue.empty()  # as if Redis had lost the jobs: only the commands act

    usage = bill.flask("billing", "sync")
    assert usage.returncode == 2, usage.stderr
    assert "name one AGENCY_ID or pass --all" in usage.stderr

    one = bill.flask("billing", "sync", "cli-a")
    assert one.returncode == 0, one.stderr
    assert one.stdout == "cli-a: in sync\n", one.stdout
    assert bill.subscription("cli-a")["status"] == "active"
    assert bill.agency("cli-b").stripe_subscription_id is None

    every = bill.flask("billing", "sync", "--all")
    assert every.returncode == 0, every.stderr
    assert every.stdout == "cli-a: in sync\ncli-b: in sync\n", every.stdout
    assert bill.subscription("cli-b")["status"] == "trialing"
    assert bill.in_sync("cli-a")
    assert bill.in_sync("cli-b")

    bill.api.ok("PUT", "/v1/agencies/cli-a/seats/base", {"quantity": 4})
    bill.queue.empty()
    drained = bill.flask("billing", "drain")
    assert drained.returncode == 0, drained.stderr
    assert "1 agency sync(s) queued" in drained.stdout
    assert bill.queue.job_ids == [f"billing-sync-{enqueue.rq_safe('cli-a')}"]
    bill.work_until(lambda: bill.in_sync("cli-a"))
    assert bill.stripe_quantity("cli-a") == 4


def test_redis_down_over_http_with_worker_processes(
    bill: Billing, private_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The same through gunicorn and `workers.run` processes: their Redis connections
    outlive the restart, and the sweep's jobs reach a worker process."""
    postgres_only(bill.backend)
    runtime = build_runtime(bill.runtime.config.with_overrides(redis_url=private_redis.url))
    connection = redis.Redis.from_url(private_redis.url)
    api = Api(create_app(runtime=runtime).test_client(), API_TOKEN)
    local = Billing(runtime, connection, bill.emu, api, bill.backend, private_redis.url)
    context.install(runtime)
    log_path = tmp_path_factory.mktemp("gunicorn") / "redis-down.log"
    server = start_gunicorn("seatsvc.wsgi:app", local.env(), log_path, workers=2, threads=4)
    worker = local.spawn_worker()
    try:
        local.active_agency("outage")
        members = [f"m{i:02d}" for i in range(12)]
        joins = [
            Call("POST", "/v1/agencies/outage/members",
                 {"member_id": m, "email": f"{m}@staff.example", "source": "auto_join"})
            for m in members
        ]  # fmt: skip
        assert {r.status for r in in_threads(server.url, API_TOKEN, joins)} == {201}
        logins = [Call("POST", f"/v1/agencies/outage/members/{m}/seat-request") for m in members]

        private_redis.stop()
        down = in_threads(server.url, API_TOKEN, logins[:8])
        assert [(r.status, r.body["outcome"]) for r in down] == [(200, "auto_added")] * 8
        private_redis.start()
        assert billing.requeue_pending_syncs(0) == 1  # the scheduler's minute sweep
        up = in_threads(server.url, API_TOKEN, logins[8:])  # enqueues work again
        assert [(r.status, r.body["outcome"]) for r in up] == [(200, "auto_added")] * 4

        deadline = time.monotonic() + 30
        while not (local.in_sync("outage") and local.stripe_quantity("outage") == 12):
            assert worker.poll() is None, "the worker process died"
            assert time.monotonic() < deadline, "billing did not converge after Redis came back"
            time.sleep(0.05)
        assert local.pools("outage")["base"].billed == 12
        assert 1 <= len(local.quantity_updates("outage")) <= 2
        # The failed enqueues were logged as warnings, never as a request's error.
        log = server.log_text()
        assert "Exception on /" not in log
        assert '"level": "error"' not in log
    finally:
        output = stop_group(worker)
        server.stop()
        context.install(bill.runtime)
        context.install_gateway(runtime, None)
        connection.close()
        runtime.db.dispose()
    assert "Traceback" not in output, output[-3000:]
