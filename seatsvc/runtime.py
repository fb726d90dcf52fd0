"""What the app and the workers share: config, database, Redis, the outbox dispatcher."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import fakeredis
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
    """The configured Redis, or an in-process fake one when none is configured."""
    if url:
        # One quick retry at most: a request's after-commit enqueue must not hang on a
        # sick Redis (the outbox row is committed; the sweep delivers it later).
        return redis.Redis.from_url(
            url,
            socket_timeout=2,
            socket_connect_timeout=1,
            retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        )
    log.info("REDIS_URL is not set: using an in-process fake Redis")
    return fakeredis.FakeRedis(server=_embedded_server())


_EMBEDDED: list[fakeredis.FakeServer] = []


def _embedded_server() -> fakeredis.FakeServer:
    if not _EMBEDDED:
        _EMBEDDED.append(fakeredis.FakeServer())
    return _EMBEDDED[0]


@dataclass
class Runtime:
    config: Config
    db: Database
    redis: redis.Redis
    dispatcher: Dispatcher = field(default_factory=NullDispatcher)

    @classmethod
    def build(cls, config: Config) -> Runtime:
        from workers.dispatch import RqDispatcher  # workers import seatsvc, not the reverse

        db = Database(config.database_url)
        connection = connect_redis(config.redis_url)
        return cls(config=config, db=db, redis=connection, dispatcher=RqDispatcher(db, connection))

    def transaction(self, work: Callable[[Session], T]) -> T:
        """Run `work` in one transaction, then hand its outbox rows to the dispatcher."""
        touched: list[OutboxTouched | None] = []

        def unit(session: Session) -> T:
            result = work(session)
            touched.append(session.info.pop("outbox", None))
            return result

        return self.db.run(unit, after_commit=lambda _result: self.after_commit(touched[-1]))

    def after_commit(self, touched: OutboxTouched | None) -> None:
        if touched is None:
            return
        try:
            self.dispatcher.dispatch(touched)
        except Exception:  # Redis down: the rows are committed; the sweep re-enqueues them
            log.warning("could not enqueue outbox work; the sweep will retry", exc_info=True)
