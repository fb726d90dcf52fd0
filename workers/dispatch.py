"""From committed outbox rows to RQ jobs: the after-commit dispatcher and the sweep.

One job per notification, with an id made from the queue and the row id and
enqueued with rq's `unique=True`: dispatching the same row twice (the request's
after-commit hook and a sweep, two sweeps, ...) queues it once. The row itself
remains the source of truth; a job is only a nudge, and a lost nudge is
re-sent by the sweep.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import timedelta

import redis
from rq import Queue, Retry

from seatsvc.db import Database
from seatsvc.observability import job_meta
from seatsvc.runtime import Runtime
from seatsvc.services.outbox import OutboxTouched
from workers import billing, queues, reconcile
from workers.notifier import JOB_TIMEOUT, due_for_sweep

log = logging.getLogger(__name__)

SEND_JOB = "workers.notifier.send_notification"
# Transient SMTP failures: 7 tries over about 2.5 hours, then the sweep goes on.
SMTP_RETRY = Retry(max=6, interval=[10, 60, 300, 900, 3600, 3600])
QUEUED_TTL = 24 * 3600  # a job queued this long is dropped; the row waits for the sweep
RESULT_TTL = 3600
FAILURE_TTL = 7 * 24 * 3600
REDIS_DOWN_QUIET_SECONDS = 5.0


def job_id(queue_name: str, notification_id: int) -> str:
    """`notifications-42`: rq ids allow letters, digits, `-` and `_` only."""
    return f"{queue_name}-{notification_id}"


def enqueue_notification(
    queue: Queue, notification_id: int, retry: Retry = SMTP_RETRY, replace_ended: bool = False
) -> bool:
    """Queue the send job unless one for this row is already waiting or running.

    `replace_ended`: a job that ended (finished, or failed after its retries) still
    holds its id until its TTL; the sweep replaces it, since the row says more work
    is owed.
    """
    status = queues.enqueue_once(
        queue,
        SEND_JOB,
        job_id(queue.name, notification_id),
        (notification_id,),
        replace_ended=replace_ended,
        retry=retry,
        timeout=JOB_TIMEOUT,
        ttl=QUEUED_TTL,
        result_ttl=RESULT_TTL,
        failure_ttl=FAILURE_TTL,
        description=f"send notification {notification_id}",
        meta=job_meta(),
    )
    return status is None


def enqueue_many(
    queue: Queue, ids: Iterable[int], retry: Retry = SMTP_RETRY, replace_ended: bool = False
) -> int:
    return sum(enqueue_notification(queue, i, retry, replace_ended) for i in ids)


class RqDispatcher:
    """The `seatsvc.runtime.Dispatcher` that hands committed notifications to the notifier.

    Billing changes enqueue the agency's sync job (one per agency, coalescing).
    Reconcile requests (`reconcile_agency_ids`) enqueue the agency's reconcile job.
    """

    def __init__(
        self,
        db: Database,
        connection: redis.Redis,
        queue_name: str = queues.NOTIFIER_QUEUE,
        retry: Retry = SMTP_RETRY,
    ) -> None:
        self.db = db
        self.connection = connection
        self.queue_name = queue_name
        self.retry = retry
        self._quiet_until = 0.0

    def dispatch(self, touched: OutboxTouched) -> None:
        # Redis just failed us: don't make every request wait out a connect timeout
        # while it is down. The rows are committed; the sweep enqueues them later.
        if time.monotonic() < self._quiet_until:
            log.info("Redis was unreachable moments ago: outbox work left to the sweep")
            return
        try:
            self._enqueue(touched)
        except (redis.ConnectionError, redis.TimeoutError):
            self._quiet_until = time.monotonic() + REDIS_DOWN_QUIET_SECONDS
            raise

    def _enqueue(self, touched: OutboxTouched) -> None:
        # Billing first: a seat change reaching Stripe matters more than its email.
        for agency_id in sorted(touched.billing_agency_ids):
            billing.enqueue_sync(self.connection, agency_id)
        for agency_id in sorted(touched.reconcile_agency_ids):
            reconcile.enqueue_reconcile(self.connection, agency_id)
        if touched.notification_ids:
            enqueue_many(
                queues.queue(self.connection, self.queue_name),
                sorted(touched.notification_ids),
                self.retry,
            )


def sweep(
    runtime: Runtime,
    older_than: timedelta = timedelta(seconds=60),
    queue_name: str = queues.NOTIFIER_QUEUE,
    retry: Retry = SMTP_RETRY,
    limit: int = 1000,
) -> int:
    """Enqueue every notification nobody is working on; returns how many were queued."""
    with runtime.db.session() as session:
        ids = due_for_sweep(session, older_than, limit)
    queued = enqueue_many(queues.queue(runtime.redis, queue_name), ids, retry, replace_ended=True)
    if ids:
        log.info("notification sweep: %d due, %d queued", len(ids), queued)
    return queued
