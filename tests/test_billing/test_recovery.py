"""Recovery in seconds, not minutes: workers SIGKILLed in a burst, a retry's backoff
not holding a fresh seat change back.

Workers here are the Procfile's `python -m workers.run worker` processes; no scheduler
process runs, so whatever converges does so through the workers' own recovery.
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest
from rq import Retry
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler

from seatsvc import enqueue
from tests.test_billing.conftest import Billing, kill_group, postgres_only, stop_group
from workers import billing

AGENCIES = [f"kill{i}" for i in range(10)]
KILLS = 20
KILL_EVERY = 1.5  # seconds; a worker process needs about one to start
ROUNDS = 5  # seat changes per agency during the kills
CONVERGE_WITHIN = 90.0  # seconds after the last kill


def seat_added(bill: Billing, agency_id: str, member_id: str) -> None:
    (outcome,) = bill.join_and_login([member_id], agency_id)
    assert outcome["outcome"] == "auto_added", outcome


def test_a_fresh_seat_change_does_not_wait_behind_a_retry_backoff(
    bill: Billing, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(enqueue, "BILLING_RETRY", Retry(max=3, interval=[600]))
    bill.active_agency("patient")
    sub_path = f"/v1/subscriptions/{bill.agency('patient').stripe_subscription_id}"
    bill.emu.fail_next(429, count=1, path_prefix=sub_path, method="POST")
    seat_added(bill, "patient", "amy")
    bill.work()  # Stripe says 429: the retry waits ten minutes
    job_id = f"billing-sync-{enqueue.rq_safe('patient')}"
    scheduled = ScheduledJobRegistry(queue=bill.queue)
    assert scheduled.get_job_ids() == [job_id]

    # The periodic sweep leaves the backoff alone (Stripe may still be failing)...
    assert billing.requeue_pending_syncs(0) == 1
    assert scheduled.get_job_ids() == [job_id]
    assert bill.queue.count == 0

    # ...a new seat change does not wait for it.
    seat_added(bill, "patient", "bob")
    assert scheduled.get_job_ids() == []
    assert bill.queue.job_ids == [job_id]
    started = time.monotonic()
    bill.work()
    assert bill.in_sync("patient")
    assert time.monotonic() - started < 10
    assert bill.stripe_quantity("patient") == 2
    statuses = [e["status"] for e in bill.emu.requests(sub_path, "POST")]
    assert statuses == [429, 200]


@pytest.mark.slow
def test_a_retry_runs_on_time_though_a_dead_worker_holds_rqs_scheduler_lock(
    bill: Billing,
) -> None:
    postgres_only(bill.backend)
    bill.active_agency("stale-lock")
    sub_path = f"/v1/subscriptions/{bill.agency('stale-lock').stripe_subscription_id}"
    # What a SIGKILLed worker's scheduler leaves behind: rq's lock, for another 61 s.
    bill.redis.set(RQScheduler.get_locking_key(enqueue.BILLING_QUEUE), "dead-worker", ex=61)
    bill.emu.fail_next(429, count=1, path_prefix=sub_path, method="POST")
    worker = bill.spawn_worker()
    try:
        seat_added(bill, "stale-lock", "amy")  # fails once; its retry is due 2 s later
        started = time.monotonic()
        while not bill.in_sync("stale-lock"):
            assert worker.poll() is None, "the worker process died"
            assert time.monotonic() - started < 20, "the retry waited for rq's scheduler lock"
            time.sleep(0.1)
    finally:
        stop_group(worker)
    assert [e["status"] for e in bill.emu.requests(sub_path, "POST")] == [429, 200]


@pytest.mark.slow
def test_workers_killed_in_a_burst_every_agency_converges_within_90_s(bill: Billing) -> None:
    postgres_only(bill.backend)
    for agency_id in AGENCIES:
        bill.active_agency(agency_id)
    bill.emu.configure(write_latency=0.4)  # Stripe slow enough for kills to land mid-sync
    started = StartedJobRegistry(queue=bill.queue)
    errors: list[BaseException] = []

    def burst() -> None:
        try:
            for round_ in range(ROUNDS):
                for agency_id in AGENCIES:
                    seat_added(bill, agency_id, f"{agency_id}-m{round_}")
                time.sleep(KILL_EVERY * KILLS * 0.6 / ROUNDS)
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    workers = [bill.spawn_worker(), bill.spawn_worker()]
    requests = threading.Thread(target=burst, daemon=True)
    mid_job_kills = 0
    try:
        requests.start()
        for kill in range(KILLS):
            time.sleep(KILL_EVERY)
            mid_job_kills += bool(bill.redis.zcard(started.key))  # a job was running
            slot = kill % len(workers)
            kill_group(workers[slot])
            workers[slot] = bill.spawn_worker()
        last_kill = time.monotonic()
        requests.join(timeout=60)
        assert not requests.is_alive(), "the seat requests did not finish"
        assert not errors, errors

        deadline = last_kill + CONVERGE_WITHIN
        while not all(bill.in_sync(agency_id) for agency_id in AGENCIES):
            assert all(w.poll() is None for w in workers), "a worker process died"
            lagging = [a for a in AGENCIES if not bill.in_sync(a)]
            assert time.monotonic() < deadline, (
                f"not converged {CONVERGE_WITHIN} s after: {lagging}"
            )
            time.sleep(0.5)
        took = time.monotonic() - last_kill
    finally:
        outputs = [stop_group(worker) for worker in workers]
        bill.emu.configure(write_latency=0.0)
    print(f"converged {took:.1f} s after the last of {KILLS} kills ({mid_job_kills} mid-job)")
    assert mid_job_kills >= 3, "the kills never hit a running job: the test proved nothing"

    for agency_id in AGENCIES:
        assert bill.stripe_quantity(agency_id) == ROUNDS
        assert bill.pools(agency_id)["base"].billed == ROUNDS
    # Never a second customer, subscription or item for the same thing.
    customers = Counter(c["metadata"].get("agency_id") for c in bill.emu.objects("customer"))
    assert all(count == 1 for count in customers.values()), customers
    subscriptions = bill.emu.objects("subscription")
    assert len(subscriptions) == len(AGENCIES)
    for subscription in subscriptions:
        prices = [item["price"]["id"] for item in subscription["items"]["data"]]
        assert len(prices) == len(set(prices)), subscription["id"]
    for output in outputs:
        assert "Traceback" not in output, output[-3000:]
