"""The supervisor keeps a worker or scheduler loop going through outages, and stops on request."""

from __future__ import annotations

import os
import signal

import pytest
import redis
from rq.exceptions import StopRequested

from seatsvc.db import DatabaseUnavailable
from workers import supervise
from workers.supervise import Supervisor


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    taken: list[float] = []
    monkeypatch.setattr(Supervisor, "pause", lambda self, seconds: taken.append(seconds))
    return taken


def test_outages_are_outlived_with_a_capped_backoff(pauses: list[float]) -> None:
    errors: list[Exception] = [redis.ConnectionError("refused")] * 6 + [
        DatabaseUnavailable("OperationalError")
    ]
    runs = []

    def once() -> bool:
        runs.append(1)
        if errors:
            raise errors.pop(0)
        return True

    Supervisor("test loop").run(once)
    assert len(runs) == 8
    assert pauses == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_a_loop_that_ends_by_itself_is_started_again(pauses: list[float]) -> None:
    results = [False, False, True]
    Supervisor("test loop").run(lambda: results.pop(0))
    assert results == []
    assert len(pauses) == 2


def test_a_stop_request_ends_it(pauses: list[float]) -> None:
    def once() -> bool:
        raise StopRequested

    Supervisor("test loop").run(once)
    assert pauses == []


def test_sigterm_while_waiting_to_restart_stops_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(supervise, "FIRST_DELAY", 30.0)
    previous = signal.getsignal(signal.SIGTERM)
    runs = []

    def once() -> bool:
        runs.append(1)
        signal.setitimer(signal.ITIMER_REAL, 0.2)  # SIGALRM, then our SIGTERM
        raise redis.ConnectionError("refused")

    signal.signal(signal.SIGALRM, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    try:
        Supervisor("test loop").run(once)
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    assert runs == [1]
