"""Notifier fixtures: a real SMTP sink on a socket, real RQ queues, the worker's Runtime.

Redis: the real server when reachable (CI requires it), else an in-process
fakeredis (and the tests that need worker subprocesses are skipped). Every test
gets its own queue names and cleans up its keys, so concurrent runs on one
Redis never meet.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from rq import Retry, SimpleWorker
from sqlalchemy import select

from devtools.smtp_sink import MailSink, start
from seatsvc.db import Database
from seatsvc.models import Notification
from seatsvc.runtime import NullDispatcher, Runtime
from tests import backends
from workers import context, queues
from workers.dispatch import RqDispatcher

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MAIL_FROM = "Seat Service <no-reply@seatsvc.example>"
# Backoff short enough for a test, still through rq's scheduler (not immediate).
FAST_RETRY = Retry(max=4, interval=[1])


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> str | None:
    """The real Redis, or None: then an in-process fakeredis stands in (no subprocesses)."""
    return backends.TEST_REDIS_URL if backends.redis_reachable() is None else None


@pytest.fixture
def redis_conn(redis_url: str | None) -> Iterator[redis.Redis]:
    if redis_url is None:
        import fakeredis

        # fakeredis over TCP (TcpFakeServer) drops connections now and then; in-process is exact.
        fake: redis.Redis = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        yield fake
        return
    connection = redis.Redis.from_url(redis_url)
    yield connection
    connection.close()


# --- the SMTP sink ---------------------------------------------------------------


class RefusingSink(MailSink):
    """Refuses the first `refusals` RCPT (or DATA) commands with `reply`, then accepts."""

    def __init__(self, reply: str, refusals: int, stage: str = "RCPT", delay: float = 0.0):
        super().__init__()
        self.reply = reply
        self.refusals = refusals
        self.stage = stage
        self.delay = delay
        self.attempts = 0

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if self.stage == "RCPT" and self._refuse():
            return self.reply.replace("{address}", address)
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.stage == "DATA" and self._refuse():
            return self.reply
        return await super().handle_DATA(server, session, envelope)

    def _refuse(self) -> bool:
        self.attempts += 1
        return self.attempts <= self.refusals


@dataclass
class Sink:
    handler: MailSink
    url: str

    @property
    def messages(self) -> list[Any]:
        return self.handler.messages

    @property
    def received(self) -> list[Any]:
        return self.handler.received


@pytest.fixture
def make_sink() -> Iterator[Callable[[MailSink], Sink]]:
    controllers: list[Any] = []

    def make(handler: MailSink) -> Sink:
        port = free_port()
        controllers.append(start(handler, "127.0.0.1", port))
        return Sink(handler, f"smtp://127.0.0.1:{port}?timeout=10")

    yield make
    for controller in controllers:
        controller.stop()


@pytest.fixture
def sink(make_sink: Callable[[MailSink], Sink]) -> Sink:
    return make_sink(MailSink())


# --- the notifier side -------------------------------------------------------------


@dataclass
class Notifier:
    """The worker side of one test: its queue, its Runtime, a way to run workers."""

    runtime: Runtime
    queue_name: str
    redis: redis.Redis
    app_runtime: Runtime
    smtp_url: str
    extra_queues: list[str] = field(default_factory=list)

    @property
    def queue(self) -> Any:
        return queues.queue(self.redis, self.queue_name)

    def work(self, queue_name: str | None = None) -> None:
        """Run a real rq worker (in this process) until its queue is empty."""
        worker = SimpleWorker(
            [queues.queue(self.redis, queue_name or self.queue_name)],
            connection=self.redis,
            serializer=queues.SERIALIZER,
        )
        worker.work(burst=True, with_scheduler=True, logging_level="WARNING")

    def work_until(self, done: Callable[[], bool], timeout: float = 20.0) -> None:
        """Burst workers (their scheduler moves due retries back) until `done()`."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "the notifier did not get there in time"
            self.work()
            time.sleep(0.2)

    def rows(self, kind: str | None = None) -> list[Notification]:
        with self.runtime.db.session() as session:
            query = select(Notification).order_by(Notification.id)
            if kind is not None:
                query = query.where(Notification.kind == kind)
            return list(session.scalars(query))

    def row(self, notification_id: int) -> Notification:
        with self.runtime.db.session() as session:
            found = session.get(Notification, notification_id)
            assert found is not None
            return found

    def new_queue(self) -> str:
        name = f"{self.queue_name}-x{len(self.extra_queues)}"
        self.extra_queues.append(name)
        return name

    def worker_env(self, queue_name: str) -> dict[str, str]:
        config = self.runtime.config
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEATSVC_", "SMTP_"))}
        env.update(
            DATABASE_URL=config.database_url,
            SMTP_URL=config.smtp_url,
            MAIL_FROM=config.mail_from,
            SEATSVC_SECRET_KEY=config.secret_key,
            INVITE_ACCEPT_URL=config.invite_accept_url,
            PYTHONPATH=str(PROJECT_ROOT),
        )
        return env

    def spawn_worker(self, queue_name: str, redis_url: str) -> subprocess.Popen[bytes]:
        """`python -m workers.run notifier --burst`, the Procfile's process, on one queue."""
        env = self.worker_env(queue_name)
        env["REDIS_URL"] = redis_url
        return subprocess.Popen(
            [sys.executable, "-m", "workers.run", "notifier", "--burst", "--queue", queue_name],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def notifier_factory(
    runtime: Runtime, redis_conn: redis.Redis, make_sink: Callable[[MailSink], Sink]
) -> Iterator[Callable[..., tuple[Notifier, Sink]]]:
    """Wire the app to enqueue into a private queue and a worker Runtime to a sink."""
    made: list[Notifier] = []

    def make(handler: MailSink | None = None, retry: Retry = FAST_RETRY) -> tuple[Notifier, Sink]:
        sink = make_sink(handler or MailSink())
        queue_name = f"notif-test-{secrets.token_hex(4)}"
        config = runtime.config.with_overrides(smtp_url=sink.url, mail_from=MAIL_FROM)
        worker_runtime = Runtime(
            config=config,
            db=Database(config.database_url),
            redis=redis_conn,
            dispatcher=NullDispatcher(),
        )
        runtime.dispatcher = RqDispatcher(runtime.db, redis_conn, queue_name, retry)
        context.install(worker_runtime)
        notifier = Notifier(worker_runtime, queue_name, redis_conn, runtime, sink.url)
        made.append(notifier)
        return notifier, sink

    yield make
    context.install(None)
    for notifier in made:
        notifier.runtime.db.dispose()
        for name in [notifier.queue_name, *notifier.extra_queues]:
            for key in redis_conn.scan_iter(match=f"*{name}*", count=500):
                redis_conn.delete(key)


@pytest.fixture
def notifier_and_sink(
    notifier_factory: Callable[..., tuple[Notifier, Sink]],
) -> tuple[Notifier, Sink]:
    return notifier_factory()
