"""Each email is sent once: re-runs, races, transient refusals, permanent refusals, sweeps."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq.job import Job
from sqlalchemy import update

from seatsvc import enqueue
from seatsvc.enqueue import RqDispatcher
from seatsvc.mail import delivery
from seatsvc.models import Notification, utcnow
from seatsvc.runtime import Runtime
from seatsvc.services import outbox
from seatsvc.services.outbox import OutboxTouched
from tests.helpers import Api
from tests.test_notifier.conftest import FAST_RETRY, Notifier, RefusingSink, Sink


def auto_add(api: Api) -> None:
    """One seat_auto_added notification for the admins (m2 joins a full agency)."""
    api.agency(seats=1, auto_add=True)
    for member in ("m1", "m2"):
        api.join(member)
        api.seat_request(member)


def test_a_job_run_twice_and_rerun_after_success_sends_one_email(
    api: Api, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    ntf, sink = notifier_and_sink
    auto_add(api)
    [row] = ntf.rows()
    job_id = enqueue.notification_job_id(ntf.queue_name, row.id)
    ntf.work()
    assert len(sink.messages) == 1

    # Re-run from the dashboard: the same job enqueued again.
    finished = Job.fetch(job_id, connection=ntf.redis, serializer=enqueue.SERIALIZER)
    assert finished.return_value() == "sent"
    ntf.queue.enqueue_job(finished)
    # And someone enqueuing the job function by hand.
    by_hand = ntf.queue.enqueue(enqueue.SEND_JOB, row.id)
    ntf.work()
    # Dispatching the row again (an ended job's id is taken over): one more harmless run.
    assert enqueue.enqueue_notifications(ntf.redis, [row.id], ntf.queue_name) == 1
    ntf.work()

    assert len(sink.messages) == 1
    assert by_hand.return_value(refresh=True) == "nothing to do: already sent"
    assert ntf.row(row.id).attempts == 1


def test_threads_racing_on_one_row_send_one_email(
    api: Api, notifier_factory: Callable[..., tuple[Notifier, Sink]]
) -> None:
    ntf, sink = notifier_factory(RefusingSink("", 0, delay=0.3))
    auto_add(api)
    [row] = ntf.rows()
    barrier = threading.Barrier(6)
    results: list[str] = []

    def race() -> None:
        barrier.wait()
        results.append(delivery.deliver(ntf.runtime, row.id))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(results).count("sent") == 1, results
    assert len(sink.messages) == 1
    assert ntf.row(row.id).status == "sent"


@pytest.mark.slow
def test_two_worker_processes_racing_on_one_row_send_one_email(
    api: Api, redis_url: str | None, notifier_factory: Callable[..., tuple[Notifier, Sink]]
) -> None:
    if redis_url is None:
        pytest.skip("worker processes need a real Redis (CI has one)")
    ntf, sink = notifier_factory(RefusingSink("", 0, delay=0.5))
    auto_add(api)
    [row] = ntf.rows()
    # The same row queued on two queues (two job ids), one `workers.run` process each.
    other = ntf.new_queue()
    assert enqueue.enqueue_notifications(ntf.redis, [row.id], other) == 1
    workers = [ntf.spawn_worker(name, redis_url) for name in (ntf.queue_name, other)]
    outputs = [worker.communicate(timeout=60)[0].decode() for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0], outputs
    assert len(sink.messages) == 1, outputs
    results = sorted(
        str(
            Job.fetch(
                enqueue.notification_job_id(name, row.id),
                connection=ntf.redis,
                serializer=enqueue.SERIALIZER,
            ).return_value()
        )
        for name in (ntf.queue_name, other)
    )
    assert results[-1] == "sent" and results[0].startswith("nothing to do"), results
    assert ntf.row(row.id).attempts == 1
    assert "m2@staff.example" not in "".join(outputs)


def test_a_transient_refusal_is_retried_with_backoff_and_delivered_once(
    api: Api,
    notifier_factory: Callable[..., tuple[Notifier, Sink]],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    handler = RefusingSink("451 4.3.0 {address}: mailbox busy, try later", refusals=2)
    ntf, sink = notifier_factory(handler)
    caplog.set_level(logging.DEBUG)
    auto_add(api)
    [row] = ntf.rows()

    ntf.work()
    failed_once = ntf.row(row.id)
    assert failed_once.status == "pending" and not sink.messages
    assert "451" in (failed_once.last_error or "")
    assert "admin@clinic.example" not in (failed_once.last_error or "")
    job = Job.fetch(
        enqueue.notification_job_id(ntf.queue_name, row.id),
        connection=ntf.redis,
        serializer=enqueue.SERIALIZER,
    )
    assert job.get_status() == "scheduled"  # backoff through rq's scheduler

    ntf.work_until(lambda: ntf.row(row.id).status == "sent")
    ntf.work()

    assert len(sink.messages) == 1
    done = ntf.row(row.id)
    assert (done.attempts, done.last_error) == (3, None)
    assert handler.attempts == 3
    # The retried failures were logged (rq logs the exception) without the addresses.
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "451 4.3.0 [email]: mailbox busy" in logged
    assert "m2@staff.example" not in logged and "admin@clinic.example" not in logged


@pytest.mark.parametrize(
    ("stage", "reply"),
    [
        ("RCPT", "550 5.1.1 <{address}>: Recipient address rejected: User unknown"),
        ("DATA", "554 5.6.0 Message rejected as spam"),
    ],
)
def test_a_permanent_refusal_is_recorded_and_not_retried(
    api: Api,
    notifier_factory: Callable[..., tuple[Notifier, Sink]],
    stage: str,
    reply: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    handler = RefusingSink(reply, refusals=100, stage=stage)
    ntf, sink = notifier_factory(handler)
    api.agency(seats=2)
    caplog.set_level(logging.DEBUG)
    api.invite("m3")
    [row] = ntf.rows()

    ntf.work()
    ntf.work()

    failed = ntf.row(row.id)
    assert failed.status == "failed"
    assert reply[:3] in (failed.last_error or "")
    assert "m3@staff.example" not in (failed.last_error or "")
    assert handler.attempts == 1 and not sink.messages
    job = Job.fetch(
        enqueue.notification_job_id(ntf.queue_name, row.id),
        connection=ntf.redis,
        serializer=enqueue.SERIALIZER,
    )
    result = str(job.return_value())
    assert result.startswith("failed: ") and reply[:3] in result
    # A clinician's address appears in no log line, even when the server quotes it.
    out, err = capfd.readouterr()
    assert "m3@staff.example" not in caplog.text + out + err
    assert "notification" in caplog.text


def test_no_clinician_email_in_logs_while_sending(
    api: Api,
    notifier_and_sink: tuple[Notifier, Sink],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    ntf, sink = notifier_and_sink
    caplog.set_level(logging.DEBUG)
    auto_add(api)  # an admin email naming m2
    api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 3})
    assert api.invite("m3").status_code == 201  # an email to m3
    ntf.work()

    assert len(sink.messages) == 2
    out, err = capfd.readouterr()
    logged = caplog.text + out + err
    assert "sent to 1 recipient" in logged
    for address in ("m2@staff.example", "m3@staff.example", "admin@clinic.example"):
        assert address not in logged


def test_redis_down_delays_the_email_and_the_sweep_sends_it(
    api: Api, runtime: Runtime, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    ntf, sink = notifier_and_sink
    dead = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    runtime.dispatcher = RqDispatcher(dead, ntf.queue_name, FAST_RETRY)
    auto_add(api)  # the request still succeeds
    [row] = ntf.rows()
    ntf.work()
    assert not sink.messages

    queued = ntf.requeue()
    again = ntf.requeue()
    ntf.work()

    assert (queued, again) == (1, 0)  # the second sweep finds the job already queued
    assert len(sink.messages) == 1
    assert ntf.row(row.id).status == "sent"


def test_while_redis_is_down_requests_do_not_each_wait_for_it(
    runtime: Runtime, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    ntf, _sink = notifier_and_sink
    # A Redis that hangs: the port listens, nothing ever answers.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(16)
        dead = redis.Redis(
            port=hung.getsockname()[1], socket_timeout=0.3, retry=Retry(NoBackoff(), 0)
        )
        dispatcher = RqDispatcher(dead, ntf.queue_name, FAST_RETRY)
        touched = OutboxTouched(notification_ids={1}, billing_agency_ids={"c"})

        with pytest.raises(redis.RedisError):
            dispatcher.dispatch(touched)  # Runtime.after_commit logs this one
        dead.close()
        dispatcher.connection = Untouchable()  # type: ignore[assignment]
        for _ in range(20):
            dispatcher.dispatch(touched)  # skipped: the sweep will enqueue these rows


class Untouchable:
    """Stands in for a Redis that must not be called while it is known to be down."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"Redis was used ({name}) during the quiet period")


def test_a_row_claimed_by_a_dead_worker_is_sent_after_its_lease(
    api: Api, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    ntf, sink = notifier_and_sink
    auto_add(api)
    [row] = ntf.rows()
    ntf.queue.empty()

    def claim(at: object) -> None:
        ntf.runtime.transaction(
            lambda s: s.execute(
                update(Notification)
                .where(Notification.id == row.id)
                .values(status="sending", claimed_at=at, attempts=1)
            )
        )

    claim(utcnow())  # a live claim: nobody else may send
    assert delivery.deliver(ntf.runtime, row.id) == "nothing to do: already sending"
    assert ntf.requeue() == 0

    claim(utcnow() - outbox.CLAIM_LEASE - timedelta(seconds=1))  # its worker died mid-send
    assert ntf.requeue() == 1
    ntf.work()

    assert len(sink.messages) == 1
    done = ntf.row(row.id)
    assert (done.status, done.attempts, done.claimed_at) == ("sent", 2, None)
