"""Engine, sessions and the unit of work.

Views never commit: `unit_of_work` opens a Session, runs one service call,
commits, and only then runs the after-commit hooks (enqueueing to Redis), so a
job can never see a row that was rolled back.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, MetaData, Select, create_engine, event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

T = TypeVar("T")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


# PostgreSQL SQLSTATEs worth one more try: serialization failure, deadlock.
_RETRYABLE_SQLSTATES = {"40001", "40P01"}


class DatabaseUnavailable(Exception):
    """The database cannot be reached; callers answer 503."""


def make_engine(url: str, **kwargs: Any) -> Engine:
    # SQL parameters hold emails and tokens: keep them out of error messages and logs.
    kwargs.setdefault("hide_parameters", True)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return _make_sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        kwargs.setdefault("pool_timeout", 5)
    connect_args = kwargs.pop("connect_args", {})
    connect_args.setdefault("connect_timeout", 5)
    return create_engine(url, connect_args=connect_args, **kwargs)


def _make_sqlite_engine(url: str, **kwargs: Any) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)

    # SQLite has no SELECT ... FOR UPDATE. BEGIN IMMEDIATE takes the write lock
    # up front, so two read-then-write transactions serialise instead of one of
    # them failing with "database is locked" at its first write.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


SelectT = TypeVar("SelectT", bound=Select[Any])


def for_update(query: SelectT) -> SelectT:
    """SELECT ... FOR UPDATE, refreshing rows this session already holds.

    Without `populate_existing` the ORM would hand back the copy it loaded before
    the lock was granted, and a decision would be taken on stale data.
    """
    return query.with_for_update().execution_options(populate_existing=True)


def insert_once(session: Session, model: type[Base], values: dict[str, Any], key: str) -> Any:
    """INSERT … ON CONFLICT (key) DO NOTHING: the new row's primary key, or None if a row
    with that key exists. Concurrent inserts of one key store one row without a
    unique-key error (and without retrying the transaction)."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    primary_key = model.__mapper__.primary_key[0]
    return session.execute(
        insert(model)
        .values(**values)
        .on_conflict_do_nothing(index_elements=[key])
        .returning(primary_key)
    ).scalar_one_or_none()


def is_postgres(engine: Engine) -> bool:
    return engine.dialect.name == "postgresql"


class Database:
    """One engine and its session factory, shared by the app and the workers."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.engine = make_engine(url, **engine_kwargs)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    def run(
        self,
        work: Callable[[Session], T],
        after_commit: Callable[[T], None] | None = None,
        attempts: int = 3,
        patience: float = 0.0,
    ) -> T:
        """Run `work` in one transaction and commit; retry on races, 503 when down.

        A unique-key race (two requests creating the same member) or a deadlock
        is resolved by running the whole unit again: the second run sees the
        row the first one committed and answers idempotently.

        With `patience` (seconds), a lost connection or an unreachable database is
        retried with backoff for that long before `DatabaseUnavailable`. Only for
        work that is safe to repeat even if a commit whose answer was lost had
        succeeded (a conditional UPDATE, a job's bookkeeping): a request answers
        503 at once instead, and its caller retries.
        """
        deadline = time.monotonic() + patience
        pause = 0.1
        attempt = 0
        while True:
            attempt += 1
            try:
                with self.sessions() as session, session.begin():
                    result = work(session)
            except IntegrityError:
                if attempt >= attempts:
                    raise
                continue
            except DBAPIError as error:
                if _is_retryable(error) and attempt < attempts:
                    time.sleep(0.01 * attempt)
                    continue
                if not _is_unavailable(error):
                    raise
                if time.monotonic() + pause > deadline:
                    raise DatabaseUnavailable(str(error.orig.__class__.__name__)) from error
                time.sleep(pause)  # the pool replaces the dead connection on the next try
                pause = min(pause * 2, 2.0)
                continue
            if after_commit is not None:
                after_commit(result)
            return result

    def dispose(self) -> None:
        self.engine.dispose()


def _is_retryable(error: DBAPIError) -> bool:
    sqlstate = getattr(error.orig, "sqlstate", None)
    if sqlstate in _RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(error.orig)


def _is_unavailable(error: DBAPIError) -> bool:
    return isinstance(error, OperationalError) or bool(error.connection_invalidated)
