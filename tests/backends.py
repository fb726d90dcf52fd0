"""Which database and Redis the suite runs on, and their life cycle.

Fresh machine: SQLite and fakeredis. When PostgreSQL/Redis answer on the
default local ports they are used too. Under CI=true they are required: a
missing one fails the run instead of silently shrinking it.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

import fakeredis
import psycopg
import redis
from sqlalchemy import text

from seatsvc import enqueue
from seatsvc.config import Config
from seatsvc.db import Database, make_engine
from seatsvc.migrate import upgrade
from seatsvc.runtime import Runtime

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def service_redis_url() -> str:
    """REDIS_URL for a web or worker process a test starts: the suite's Redis, or (a fresh
    machine with none) an address named as production must but never reached: requests
    still succeed, the outbox keeps the work."""
    return TEST_REDIS_URL if redis_reachable() is None else "redis://127.0.0.1:1/0"


def postgres_reachable() -> str | None:
    """None if PostgreSQL answers, else why not."""
    try:
        with psycopg.connect(POSTGRES_ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as error:
        return f"{type(error).__name__}: {error}".strip()


def redis_reachable() -> str | None:
    try:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).ping()
    except redis.RedisError as error:
        return f"{type(error).__name__}: {error}"
    return None


def empty_test_redis() -> None:
    """FLUSHDB on the suite's own Redis database (TEST_REDIS_URL), when it answers."""
    if redis_reachable() is None:
        redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2).flushdb()


@dataclass
class TestDatabase:
    backend: str
    url: str
    _name: str | None = None

    @classmethod
    def create_postgres(cls) -> TestDatabase:
        name = f"seatsvc_test_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0].replace(
            "postgresql://", "postgresql+psycopg://"
        )
        database = cls("postgresql", f"{base}/{name}", name)
        try:
            upgrade(database.url)
        except BaseException:
            database.drop()
            raise
        return database

    @classmethod
    def create_sqlite(cls, directory: str) -> TestDatabase:
        database = cls("sqlite", f"sqlite:///{directory}/seatsvc-test.sqlite3")
        upgrade(database.url)
        return database

    def drop(self) -> None:
        if self.backend != "postgresql" or self._name is None:
            return
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)')


TABLES_CHILD_FIRST = (
    "plan_upgrades",
    "invites",
    "notifications",
    "seat_events",
    "billing_outbox",
    "members",
    "seat_pools",
    "agencies",
)


def empty_tables(url: str) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"TRUNCATE {', '.join(TABLES_CHILD_FIRST)} CASCADE"))
            else:
                for table in TABLES_CHILD_FIRST:
                    connection.execute(text(f"DELETE FROM {table}"))
    finally:
        engine.dispose()


def build_runtime(config: Config) -> Runtime:
    """The service's runtime on the configured Redis, or (none configured: a fresh machine)
    on an in-process fakeredis chosen here, explicitly: the service itself never falls back."""
    if config.redis_url:
        return enqueue.build_runtime(config)
    connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    return Runtime(
        config=config,
        db=Database(config.database_url),
        redis=connection,
        dispatcher=enqueue.RqDispatcher(connection),
    )
