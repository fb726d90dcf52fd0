"""Work going again within seconds of a worker's death: every worker, every few seconds,
puts abandoned jobs back in their queue and moves due retries out of the scheduled registry.

rq's own answers are too slow for us. A job whose worker was SIGKILLed stays `started`
until its heartbeat runs out (the job monitoring interval + 60 s) and a maintenance pass
(every 10 minutes by default) cleans the registry; that cleanup also counts the kill as
one of the job's retries, with its backoff. Due retries move only while some worker's
scheduler holds rq's scheduler lock, which a killed worker keeps for 61 s and which the
others try to take only at their maintenance.

Each step here claims one job with one ZREM: when two workers sweep at once only one of
them enqueues a given job, so no lock is needed (and none can be left behind by a kill).
"""

from __future__ import annotations

import logging
import time

import redis
from rq import Queue
from rq.exceptions import NoSuchJobError
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.utils import as_text, parse_composite_key

log = logging.getLogger(__name__)


def requeue_abandoned(queue: Queue, now: float | None = None) -> list[str]:
    """Put back at the front of `queue` every started job whose heartbeat has expired.

    A kill is not the job's fault, so its retries are left untouched. Jobs are
    idempotent (a billing sync converges, a notification is claimed before it is sent),
    so running again the rare job whose worker was merely slow to heartbeat is harmless.
    """
    registry = StartedJobRegistry(queue=queue)
    connection = queue.connection
    cutoff = time.time() if now is None else now
    requeued: list[str] = []
    entries: list[bytes | str] = connection.zrangebyscore(registry.key, 0, cutoff)  # type: ignore[assignment]
    for entry in entries:
        if not connection.zrem(registry.key, entry):
            continue  # another worker claimed it first
        job_id, execution_id = parse_composite_key(as_text(entry))
        _forget_execution(connection, job_id, execution_id)
        try:
            job = Job.fetch(job_id, connection=connection, serializer=queue.serializer)
        except NoSuchJobError:
            continue
        if job.get_status(refresh=False) != JobStatus.STARTED:
            continue  # it ended (or was requeued) meanwhile
        queue.enqueue_job(job, at_front=True)
        requeued.append(job_id)
    if requeued:
        log.warning("requeued %d job(s) abandoned by a dead worker: %s", len(requeued), requeued)
    return requeued


def _forget_execution(connection: redis.Redis, job_id: str, execution_id: str) -> None:
    """Drop the dead run's execution record: rq lists a job's executions for a minute
    longer than their hashes live, and a job deleted in that minute (result_ttl=0,
    when its new run succeeds) would fail on the missing hash."""
    dead = Execution(id=execution_id, job_id=job_id, connection=connection)
    with connection.pipeline() as pipeline:
        pipeline.zrem(ExecutionRegistry(job_id=job_id, connection=connection).key, execution_id)
        pipeline.delete(dead.key)
        pipeline.execute()


def enqueue_due_retries(queue: Queue) -> list[str]:
    """Move the scheduled jobs (retries, `enqueue_at`) that are due into `queue`."""
    registry = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
    connection = queue.connection
    moved: list[str] = []
    for job_id in registry.get_jobs_to_schedule():
        try:
            job = Job.fetch(job_id, connection=connection, serializer=queue.serializer)
        except NoSuchJobError:
            connection.zrem(registry.key, job_id)  # its hash expired: nothing to run
            continue
        if not connection.zrem(registry.key, job_id):
            continue  # another worker (or rq's scheduler) moved it first
        queue.enqueue_job(job, at_front=job.should_enqueue_at_front())
        moved.append(job_id)
    return moved


def recover(queue: Queue) -> None:
    requeue_abandoned(queue)
    enqueue_due_retries(queue)
