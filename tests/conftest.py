"""Shared fixtures: every API test runs on each available database backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from seatsvc.app import create_app
from seatsvc.config import Config
from seatsvc.runtime import Runtime
from tests import backends
from tests.backends import build_runtime
from tests.helpers import Api

API_TOKEN = "test-token-0123456789"
SECRET_KEY = "test-secret-key-0123456789abcdef"
_RAN: set[str] = set()


def _available_backends() -> list[str]:
    found = ["sqlite"]
    if backends.postgres_reachable() is None or backends.IN_CI:
        found.append("postgresql")
    return found


def pytest_sessionstart(session: pytest.Session) -> None:
    _require_real_services_in_ci()
    # Jobs queued by an earlier run (nobody consumes the API tests' queues) must not
    # leak into this one: the test Redis database is the suite's own.
    backends.empty_test_redis()


def pytest_sessionfinish(session: pytest.Session) -> None:
    backends.empty_test_redis()


def _require_real_services_in_ci() -> None:
    if not backends.IN_CI:
        return
    problems = [
        f"{name}: {why}"
        for name, why in (
            ("PostgreSQL", backends.postgres_reachable()),
            ("Redis", backends.redis_reachable()),
        )
        if why
    ]
    if problems:
        raise pytest.UsageError("CI=true needs the real services: " + "; ".join(problems))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    redis_kind = "real Redis" if backends.redis_reachable() is None else "fakeredis"
    ran = ", ".join(sorted(_RAN)) or "none"
    terminalreporter.write_line(f"seatsvc backends exercised: databases: {ran}; {redis_kind}")


@pytest.fixture(scope="session", params=_available_backends())
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[backends.TestDatabase]:
    if request.param == "postgresql":
        created = backends.TestDatabase.create_postgres()
    else:
        created = backends.TestDatabase.create_sqlite(str(tmp_path_factory.mktemp("sqlite")))
    _RAN.add(created.backend)
    yield created
    created.drop()


@pytest.fixture
def config(database: backends.TestDatabase) -> Config:
    redis_url = backends.TEST_REDIS_URL if backends.redis_reachable() is None else None
    return Config(
        database_url=database.url,
        redis_url=redis_url,
        api_tokens=(API_TOKEN, "rotated-token-abcdef"),
        secret_key=SECRET_KEY,
        testing=True,
    )


@pytest.fixture
def runtime(config: Config) -> Iterator[Runtime]:
    built = build_runtime(config)
    yield built
    built.db.dispose()
    backends.empty_tables(config.database_url)


@pytest.fixture
def app(runtime: Runtime) -> Flask:
    return create_app(runtime=runtime)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client, API_TOKEN)
