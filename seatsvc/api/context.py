"""How a view runs its one service call: one transaction, then the after-commit dispatch."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from flask import current_app, request
from sqlalchemy.orm import Session

from seatsvc.config import Config
from seatsvc.runtime import Runtime
from seatsvc.services.members import InvitePolicy

T = TypeVar("T")


def runtime() -> Runtime:
    found: Runtime = current_app.extensions["seatsvc"]
    return found


def config() -> Config:
    """The one home of the configuration: the runtime's (tests swap both at once)."""
    return runtime().config


def transaction(work: Callable[[Session], T]) -> T:
    return runtime().transaction(work)


def invite_policy() -> InvitePolicy:
    config = runtime().config
    return InvitePolicy(config.secret_key, timedelta(hours=config.invite_ttl_hours))


def actor() -> str:
    """Who acted, as the caller tells us (`X-Actor`), for the seat ledger."""
    claimed = request.headers.get("X-Actor", "").strip()
    return claimed[:64] if claimed.isprintable() and claimed else "api"
