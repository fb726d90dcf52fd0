"""The RQ producer side: queue names, job ids, TTLs and retries, `enqueue_*`, the dispatcher.

Everything that puts a job into Redis goes through this module; the jobs themselves
live in `workers/` and are named here by dotted path, so producers (the web app,
the webhook endpoint, the jobs' own follow-ups) never import the job code.

Jobs carry only ids, so the JSON serializer is enough, and nobody can smuggle a
pickle into a worker through Redis. A job is a nudge; the database row it names
is the truth, and the scheduler's requeue jobs re-send any nudge Redis lost.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from contextlib import suppress
from datetime import datetime
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry
from rq.serializers import JSONSerializer

from seatsvc.config import Config
from seatsvc.db import Database
from seatsvc.observability import job_meta
from seatsvc.runtime import Runtime, connect_redis
from seatsvc.services.outbox import OutboxTouched

log = logging.getLogger(__name__)

SERIALIZER = JSONSerializer
BILLING_QUEUE = "billing"
NOTIFIER_QUEUE = "notifications"

# The jobs, by dotted path (workers/ imports this module, never the reverse).
SYNC_JOB = "workers.billing.sync_agency"
INVOICE_JOB = "workers.billing.invoice_agency"
RECONCILE_JOB = "workers.reconcile.reconcile_one"
EVENT_JOB = "workers.stripe_events.process_event"
SEND_JOB = "workers.notifier.send_notification"
UPGRADE_JOB = "workers.upgrades.charge_upgrade"

# Billing: transient Stripe trouble backs off, then lands in the failed registry for ops.
BILLING_RETRY = Retry(max=6, interval=[2, 10, 30, 120, 600, 1800])
BILLING_JOB_TIMEOUT = 300
RECONCILE_JOB_TIMEOUT = 3600  # the whole-account comparison: minutes for 10,000 agencies
# Transient SMTP failures: 7 tries over about 2.5 hours, then the requeue job goes on.
SMTP_RETRY = Retry(max=6, interval=[10, 60, 300, 900, 3600, 3600])
NOTIFIER_JOB_TIMEOUT = 120  # seconds; SMTP connect and each command time out well before
QUEUED_TTL = 24 * 3600  # a job queued this long is dropped; its row waits for the requeue
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600
REDIS_DOWN_QUIET_SECONDS = 5.0

ENDED = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})


def queue(connection: redis.Redis, name: str) -> Queue:
    return Queue(name, connection=connection, serializer=SERIALIZER)


def rq_safe(identifier: str) -> str:
    """rq job ids allow [A-Za-z0-9_-]; agency ids may also hold `.` and `:` (escaped, 1:1)."""
    return re.sub(r"[^A-Za-z0-9-]", lambda match: f"_{ord(match.group()):02x}", identifier)


def enqueue_once(
    target: Queue,
    func: str,
    job_id: str,
    args: tuple[Any, ...],
    *,
    follow_up: bool = False,
    hurry: bool = False,
    **options: Any,
) -> bool:
    """Enqueue `func(*args)` as `job_id` unless a live job already holds that id.

    rq's `unique=True` refuses an id whose job still exists, even one that has
    ended (its hash lives until its TTL): an ended job is replaced, since the
    caller knows more work is owed. A queued job will read the newest state
    anyway. With `follow_up`, a job already *running* under the id may have read
    the state before this change, so `<id>-next` makes sure someone looks again
    after it. With `hurry`, a job waiting out a retry's backoff (`scheduled`) is
    moved into the queue now: fresh work must not wait behind an old failure.
    Returns whether a job was enqueued (or moved forward) by this call.
    """
    for candidate in (job_id, f"{job_id}-next") if follow_up else (job_id,):
        status = _enqueue_or_status(target, func, candidate, args, options)
        if status is None:
            return True
        if status == JobStatus.SCHEDULED and hurry:
            return _move_forward(target, candidate)
        if status != JobStatus.STARTED:
            return False
    return False


def _move_forward(target: Queue, job_id: str) -> bool:
    """Run a scheduled job now. The ZREM decides who moves it (a worker's due-retry sweep
    may race us); False when it had left the registry already (it is queued or running)."""
    registry = ScheduledJobRegistry(queue=target)  # type: ignore[no-untyped-call]
    if not target.connection.zrem(registry.key, job_id):
        return False
    try:
        job = Job.fetch(job_id, connection=target.connection, serializer=SERIALIZER)
    except NoSuchJobError:
        return False
    target.enqueue_job(job, at_front=True)
    log.info("job %s moved forward from its retry backoff", job_id)
    return True


def _enqueue_or_status(
    target: Queue, func: str, job_id: str, args: tuple[Any, ...], options: dict[str, Any]
) -> JobStatus | None:
    """None once enqueued, else the status of the live job holding `job_id`."""
    for _attempt in range(3):
        try:
            target.enqueue_call(
                func,
                args=args,
                job_id=job_id,
                unique=True,
                description=f"{func}({', '.join(map(repr, args))})",
                meta=job_meta(),
                **options,
            )
            return None
        except DuplicateJobError:
            try:
                existing = Job.fetch(job_id, connection=target.connection, serializer=SERIALIZER)
            except NoSuchJobError:
                continue  # it expired between the two calls: enqueue again
            status = existing.get_status(refresh=False)
            if status not in ENDED:
                return status
            existing.delete()
    return JobStatus.QUEUED  # lost three races to other enqueuers: one of them is queued


# ---- billing ----------------------------------------------------------------------------


def _billing(
    connection: redis.Redis,
    func: str,
    job_id: str,
    *args: Any,
    hurry: bool = False,
    **options: Any,
) -> bool:
    return enqueue_once(
        queue(connection, BILLING_QUEUE),
        func,
        job_id,
        args,
        follow_up=True,
        hurry=hurry,
        retry=BILLING_RETRY,
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
        **({"timeout": BILLING_JOB_TIMEOUT} | options),
    )


def enqueue_sync(connection: redis.Redis, agency_id: str, *, fresh: bool = True) -> bool:
    """One sync job per agency (coalescing): it converges to the newest purchased seats.

    A `fresh` change moves a sync waiting out a retry's backoff forward (a new seat must
    not wait minutes behind an old Stripe hiccup); the periodic sweep is not fresh, so
    it leaves the backoff alone while Stripe is failing.
    """
    job_id = f"billing-sync-{rq_safe(agency_id)}"
    return _billing(connection, SYNC_JOB, job_id, agency_id, hurry=fresh)


def enqueue_sync_at(connection: redis.Redis, agency_id: str, when: datetime) -> None:
    """A sync that resumes after the hourly update budget rolls over (the rq scheduler runs it)."""
    with suppress(DuplicateJobError):  # already scheduled
        queue(connection, BILLING_QUEUE).enqueue_at(
            when,
            SYNC_JOB,
            agency_id,
            job_id=f"billing-sync-{rq_safe(agency_id)}-later",
            unique=True,
            result_ttl=0,
        )


def enqueue_invoice(connection: redis.Redis, agency_id: str) -> bool:
    return _billing(connection, INVOICE_JOB, f"billing-invoice-{rq_safe(agency_id)}", agency_id)


def enqueue_upgrade(connection: redis.Redis, agency_id: str) -> bool:
    """End the trial and charge an upgrade whose card is on file (billing queue, locked)."""
    return _billing(connection, UPGRADE_JOB, f"billing-upgrade-{rq_safe(agency_id)}", agency_id)


def enqueue_reconcile(connection: redis.Redis, agency_id: str) -> bool:
    return _billing(
        connection,
        RECONCILE_JOB,
        f"stripe-reconcile-{rq_safe(agency_id)}",
        agency_id,
        timeout=RECONCILE_JOB_TIMEOUT,
    )


def event_job_id(event_id: str) -> str:
    return f"stripe-event-{rq_safe(event_id)}"


def enqueue_event(connection: redis.Redis, event_id: str) -> bool:
    """Handle one stored Stripe event (one job id per event)."""
    return _billing(connection, EVENT_JOB, event_job_id(event_id), event_id)


# ---- notifications --------------------------------------------------------------------


def notification_job_id(queue_name: str, notification_id: int) -> str:
    """`notifications-42`: rq ids allow letters, digits, `-` and `_` only."""
    return f"{queue_name}-{notification_id}"


def enqueue_notifications(
    connection: redis.Redis,
    ids: Iterable[int],
    queue_name: str = NOTIFIER_QUEUE,
    retry: Retry = SMTP_RETRY,
) -> int:
    """One send job per notification row unless one is already waiting or running."""
    target = queue(connection, queue_name)
    return sum(
        enqueue_once(
            target,
            SEND_JOB,
            notification_job_id(queue_name, notification_id),
            (notification_id,),
            retry=retry,
            timeout=NOTIFIER_JOB_TIMEOUT,
            ttl=QUEUED_TTL,
            result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL,
        )
        for notification_id in ids
    )


# ---- after commit -----------------------------------------------------------------------


class RqDispatcher:
    """The `seatsvc.runtime.Dispatcher` that turns a committed outbox into RQ jobs.

    Billing changes enqueue the agency's sync job (one per agency, coalescing),
    reconcile requests the agency's reconcile job, notifications their send jobs.
    """

    def __init__(
        self,
        connection: redis.Redis,
        queue_name: str = NOTIFIER_QUEUE,
        retry: Retry = SMTP_RETRY,
    ) -> None:
        self.connection = connection
        self.queue_name = queue_name
        self.retry = retry
        self._quiet_until = 0.0

    def dispatch(self, touched: OutboxTouched) -> None:
        # Redis just failed us: don't make every request wait out a connect timeout
        # while it is down. The rows are committed; the requeue jobs enqueue them later.
        if time.monotonic() < self._quiet_until:
            log.info("Redis was unreachable moments ago: outbox work left to the requeue jobs")
            return
        try:
            self._enqueue(touched)
        except (redis.ConnectionError, redis.TimeoutError):
            self._quiet_until = time.monotonic() + REDIS_DOWN_QUIET_SECONDS
            raise

    def _enqueue(self, touched: OutboxTouched) -> None:
        # Billing first: a seat change reaching Stripe matters more than its email.
        for agency_id in sorted(touched.billing_agency_ids):
            enqueue_sync(self.connection, agency_id)
        for agency_id in sorted(touched.reconcile_agency_ids):
            enqueue_reconcile(self.connection, agency_id)
        if touched.notification_ids:
            enqueue_notifications(
                self.connection, sorted(touched.notification_ids), self.queue_name, self.retry
            )


def build_runtime(config: Config) -> Runtime:
    """The runtime of a web or worker process: the database, Redis, and RQ after commit."""
    connection = connect_redis(config.redis_url)
    return Runtime(
        config=config,
        db=Database(config.database_url),
        redis=connection,
        dispatcher=RqDispatcher(connection),
    )
