"""What the app and the workers share: config, database, Redis, the outbox dispatcher.

`seatsvc.enqueue.build_runtime` builds the real one (RQ after commit); tests and
tools build theirs with another Redis client or dispatcher.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from sqlalchemy.orm import Session

from seatsvc.config import Config
from seatsvc.db import Database
from seatsvc.services.outbox import OutboxTouched

log = logging.getLogger(__name__)
T = TypeVar("T")


class Dispatcher(Protocol):
    """Called after commit with what the transaction put in the outbox."""

    def dispatch(self, touched: OutboxTouched) -> None: ...


class NullDispatcher:
    """Enqueues nothing: outbox rows simply wait for the sweep (tests, tools)."""

    def dispatch(self, touched: OutboxTouched) -> None:
        return None


def connect_redis(url: str | None) -> redis.Redis:
    """The configured Redis. There is no silent fallback: the dev stack and the tests
    choose an embedded fake explicitly, production must name its Redis."""
    if not url:
        raise RuntimeError("REDIS_URL is not set: the service needs Redis for its queues")
    # One quick retry at most: a request's after-commit enqueue must not hang on a
    # sick Redis (the outbox row is committed; the requeue job delivers it later).
    return redis.Redis.from_url(
        url,
        socket_timeout=2,
        socket_connect_timeout=1,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
    )


@dataclass
class Runtime:
    config: Config
    db: Database
    redis: redis.Redis
    dispatcher: Dispatcher = field(default_factory=NullDispatcher)

    def transaction(self, work: Callable[[Session], T], patience: float = 0.0) -> T:
        """Run `work` in one transaction, then hand its outbox rows to the dispatcher.

        `patience`: see `Database.run` (retry a lost connection; repeatable work only)."""
        touched: list[OutboxTouched | None] = []

        def unit(session: Session) -> T:
            result = work(session)
            touched.append(session.info.pop("outbox", None))
            return result

        return self.db.run(
            unit, after_commit=lambda _result: self.after_commit(touched[-1]), patience=patience
        )

    def after_commit(self, touched: OutboxTouched | None) -> None:
        if touched is None:
            return
        # The rows are committed either way: the requeue jobs enqueue what is not sent now.
        try:
            self.dispatcher.dispatch(touched)
        except (redis.ConnectionError, redis.TimeoutError) as error:
            # Redis away is an expected state, not a bug: one line, no traceback per request.
            log.warning("Redis unreachable (%s): outbox work left to the requeue jobs", error)
        except Exception:
            log.warning("could not enqueue outbox work; the requeue jobs will", exc_info=True)
