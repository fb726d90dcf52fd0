"""Queue names, the Redis connection and the serializer every queue and worker shares.

Jobs carry only ids, so the JSON serializer is enough, and nobody can smuggle a
pickle into a worker through Redis.
"""

from __future__ import annotations

from typing import Any

import redis
from rq import Queue
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer
from rq.types import FunctionReferenceType

from seatsvc.runtime import connect_redis

NOTIFIER_QUEUE = "notifications"
SERIALIZER = JSONSerializer


def connect(url: str | None) -> redis.Redis:
    return connect_redis(url)


def queue(connection: redis.Redis, name: str = NOTIFIER_QUEUE) -> Queue:
    return Queue(name, connection=connection, serializer=SERIALIZER)


ENDED = frozenset({JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED})


def enqueue_once(
    queue: Queue,
    func: FunctionReferenceType,
    job_id: str,
    args: tuple[Any, ...],
    *,
    replace_ended: bool,
    **options: Any,
) -> JobStatus | None:
    """Enqueue `func(*args)` as `job_id` unless a live job already holds that id.

    rq's `unique=True` refuses an id whose job still exists, even one that has
    ended (its hash lives until its TTL). Returns None once enqueued, else the
    status of the job holding the id. With `replace_ended`, an ended job
    (finished, failed, ...) is deleted and replaced: the caller knows more work
    is owed.
    """
    for _attempt in range(3):
        try:
            queue.enqueue_call(func, args=args, job_id=job_id, unique=True, **options)
            return None
        except DuplicateJobError:
            try:
                existing = Job.fetch(job_id, connection=queue.connection, serializer=SERIALIZER)
            except NoSuchJobError:
                continue  # it expired between the two calls: enqueue again
            status = existing.get_status(refresh=False)
            if not replace_ended or status not in ENDED:
                return status
            existing.delete()
    return JobStatus.QUEUED  # lost three races to other enqueuers: one of them is queued
