"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from sqlalchemy import text

from seatsvc import schemas
from seatsvc.api.context import runtime
from seatsvc.api.routing import route
from seatsvc.errors import Unavailable

bp = Blueprint("health", __name__)


@route(
    bp,
    "/healthz",
    "GET",
    "Liveness: the process answers",
    response=schemas.StatusSchema,
    auth=False,
)
def healthz() -> dict[str, Any]:
    return {"status": "ok", "checks": {}}


@route(
    bp,
    "/readyz",
    "GET",
    "Readiness: the database and Redis are reachable",
    response=schemas.StatusSchema,
    errors=(503,),
    auth=False,
)
def readyz() -> dict[str, Any]:
    rt = runtime()
    checks = {"database": _check(lambda: _ping_database(rt)), "redis": _check(rt.redis.ping)}
    if any(state != "ok" for state in checks.values()):
        raise Unavailable("not ready", checks)
    return {"status": "ok", "checks": checks}


def _ping_database(rt: Any) -> None:
    with rt.db.engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _check(probe: Any) -> str:
    try:
        probe()
    except Exception as error:
        return f"down: {type(error).__name__}"
    return "ok"
