"""The Alembic migrations build exactly the models' schema, on every backend, both ways.

Production and CI build the schema only through `migrations/` (the release step
runs `flask db upgrade`); the code only knows `seatsvc.models`. If the two
drift, the app breaks on a column the migration never created, so prove they
agree, that every downgrade undoes its upgrade, and that the CLI ops use works.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CheckConstraint, Column, Integer, MetaData, inspect, text

import seatsvc.models  # noqa: F401  (registers every table on Base.metadata)
from seatsvc.db import Base, make_engine
from seatsvc.migrate import PROJECT_ROOT, alembic_config, downgrade, upgrade
from tests import backends

BASE = "base"


def schema_differences(url: str, metadata: MetaData = Base.metadata) -> list[Any]:
    """What `alembic revision --autogenerate` would put in a new migration."""
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def current_revision(url: str) -> str | None:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def check_constraints(url: str) -> dict[str, set[str]]:
    """Alembic does not compare CHECK constraints, so compare their names ourselves."""
    engine = make_engine(url)
    try:
        inspector = inspect(engine)
        return {
            table: {str(ck["name"]) for ck in inspector.get_check_constraints(table)}
            for table in Base.metadata.tables
        }
    finally:
        engine.dispose()


def model_check_constraints() -> dict[str, set[str]]:
    return {
        name: {
            str(constraint.name)
            for constraint in table.constraints
            if isinstance(constraint, CheckConstraint)
        }
        for name, table in Base.metadata.tables.items()
    }


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("sqlite://"))


def revisions_oldest_first() -> list[str]:
    return [rev.revision for rev in reversed(list(script().walk_revisions()))]


# ---- fresh, throwaway databases -----------------------------------------------


@pytest.fixture
def fresh_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/migrations.sqlite3"


@pytest.fixture
def fresh_postgresql_url() -> Iterator[str]:
    """An empty database of our own, dropped afterwards; required under CI."""
    why = backends.postgres_reachable()
    if why is not None:
        if backends.IN_CI:
            pytest.fail(f"CI=true needs PostgreSQL: {why}")
        pytest.skip(f"PostgreSQL unreachable: {why}")
    name = f"seatsvc_migrations_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(backends.POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = backends.POSTGRES_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base.replace('postgresql://', 'postgresql+psycopg://', 1)}/{name}"
    finally:
        with psycopg.connect(backends.POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request: pytest.FixtureRequest) -> str:
    url: str = request.getfixturevalue(f"fresh_{request.param}_url")
    return url


# ---- the migrated test databases equal the models -------------------------------


def test_migrated_schema_equals_the_models(database: backends.TestDatabase) -> None:
    assert schema_differences(database.url) == []


def test_migrated_check_constraints_equal_the_models(database: backends.TestDatabase) -> None:
    assert check_constraints(database.url) == model_check_constraints()


def test_migrated_database_is_at_the_single_head(database: backends.TestDatabase) -> None:
    heads = script().get_heads()
    assert len(heads) == 1, f"diverged migration history: {heads}; add a merge revision"
    assert current_revision(database.url) == heads[0]


def test_the_comparison_sees_a_drift(database: backends.TestDatabase) -> None:
    """The control: a model column the migrations lack must show up as a difference."""
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.tables.values():
        table.to_metadata(drifted)
    drifted.tables["members"].append_column(Column("nickname", Integer, nullable=True))
    differences = schema_differences(database.url, drifted)
    assert [diff[0] for diff in differences] == ["add_column"]
    assert differences[0][3].name == "nickname"


# ---- down and up again on fresh databases ----------------------------------------


def test_upgrade_downgrade_upgrade_round_trip(fresh_url: str) -> None:
    upgrade(fresh_url)
    assert schema_differences(fresh_url) == []
    assert set(Base.metadata.tables) <= table_names(fresh_url)

    downgrade(fresh_url, BASE)
    assert table_names(fresh_url) <= {"alembic_version"}
    assert current_revision(fresh_url) is None

    upgrade(fresh_url)
    assert schema_differences(fresh_url) == []
    assert check_constraints(fresh_url) == model_check_constraints()
    assert current_revision(fresh_url) == script().get_current_head()


def test_every_revision_steps_down_and_up(fresh_url: str) -> None:
    """Stairway: each revision's downgrade undoes its upgrade, so each can be re-applied."""
    previous = BASE
    for revision in revisions_oldest_first():
        upgrade(fresh_url, revision)
        downgrade(fresh_url, previous)
        assert current_revision(fresh_url) == (None if previous == BASE else previous)
        upgrade(fresh_url, revision)
        assert current_revision(fresh_url) == revision
        previous = revision
    assert schema_differences(fresh_url) == []


def test_downgraded_data_does_not_block_upgrade(fresh_url: str) -> None:
    """Rows in the tables do not stop a downgrade (ops roll back a bad release)."""
    upgrade(fresh_url)
    engine = make_engine(fresh_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO agencies (id, name, admin_emails, trial_requested,"
                    " auto_add_seats, billing_status, trial_seat_limit, created_at, updated_at)"
                    " VALUES ('a', 'A', '[]', false, false, 'active', 1,"
                    " CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            )
            connection.execute(
                text(
                    "INSERT INTO seat_pools (agency_id, seat_type, purchased)"
                    " VALUES ('a', 'base', 2)"
                )
            )
    finally:
        engine.dispose()
    downgrade(fresh_url, BASE)
    upgrade(fresh_url)
    assert schema_differences(fresh_url) == []


# ---- the CLI ops and the release step run ------------------------------------------


def _flask(args: list[str], database_url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SEATSVC_API_TOKENS": "cli-test-token",
        "SEATSVC_SECRET_KEY": "cli-test-secret-0123456789",
        # Named, as production must, but never reached: migrating needs no Redis.
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "seatsvc.wsgi", *args],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_flask_db_upgrade_builds_a_fresh_sqlite(fresh_sqlite_url: str) -> None:
    result = _flask(["db", "upgrade"], fresh_sqlite_url)
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout
    assert current_revision(fresh_sqlite_url) == script().get_current_head()
    assert schema_differences(fresh_sqlite_url) == []

    again = _flask(["db", "upgrade"], fresh_sqlite_url)  # the release step runs every deploy
    assert again.returncode == 0, again.stderr
    assert schema_differences(fresh_sqlite_url) == []


def test_flask_db_upgrade_to_a_revision(fresh_sqlite_url: str) -> None:
    first = revisions_oldest_first()[0]
    result = _flask(["db", "upgrade", first], fresh_sqlite_url)
    assert result.returncode == 0, result.stderr
    assert current_revision(fresh_sqlite_url) == first
