"""Ops fixtures: the app with the dashboard on (an ops password), basic-auth headers."""

from __future__ import annotations

import base64

import pytest
from flask import Flask
from flask.testing import FlaskClient

from seatsvc.app import create_app
from seatsvc.runtime import Runtime

OPS_USER = "ops"
OPS_PASSWORD = "ops-pw-for-tests-0123"


def basic(user: str = OPS_USER, password: str = OPS_PASSWORD) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def ops_runtime(runtime: Runtime, password: str | None = OPS_PASSWORD) -> Runtime:
    """The same database, Redis and dispatcher, with the ops password configured."""
    return Runtime(
        config=runtime.config.with_overrides(ops_username=OPS_USER, ops_password=password),
        db=runtime.db,
        redis=runtime.redis,
        dispatcher=runtime.dispatcher,
    )


@pytest.fixture
def ops_app(runtime: Runtime) -> Flask:
    return create_app(runtime=ops_runtime(runtime))


@pytest.fixture
def ops_client(ops_app: Flask) -> FlaskClient:
    return ops_app.test_client()
