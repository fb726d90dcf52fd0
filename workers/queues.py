"""Queue names, the Redis connection and the serializer every queue and worker shares.

Jobs carry only ids, so the JSON serializer is enough, and nobody can smuggle a
pickle into a worker through Redis.
"""

from __future__ import annotations

import redis
from rq import Queue
from rq.serializers import JSONSerializer

from seatsvc.runtime import connect_redis

NOTIFIER_QUEUE = "notifications"
SERIALIZER = JSONSerializer


def connect(url: str | None) -> redis.Redis:
    return connect_redis(url)


def queue(connection: redis.Redis, name: str = NOTIFIER_QUEUE) -> Queue:
    return Queue(name, connection=connection, serializer=SERIALIZER)
