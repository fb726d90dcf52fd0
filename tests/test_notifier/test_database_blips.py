"""Each email once across a database blip: the server accepted the message, then the
database went away before the row could be marked `sent` (PostgreSQL only: the test
refuses and terminates connections to its own database, never the server)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest
from rq import Retry
from sqlalchemy import update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from devtools.smtp_sink import MailSink
from seatsvc.mail import delivery
from seatsvc.models import Notification, utcnow
from seatsvc.runtime import Runtime
from tests import backends
from tests.helpers import Api
from tests.test_notifier.conftest import Notifier, Sink


def _admin(statement: str, *params: Any) -> None:
    with psycopg.connect(backends.POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=3) as admin:
        admin.execute(statement, params)  # type: ignore[arg-type]


def database_away(name: str) -> None:
    """New connections refused, existing ones terminated: the database is gone for us."""
    _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
    _admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = %s AND pid <> pg_backend_pid()",
        name,
    )


def database_back(name: str) -> None:
    _admin(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')


class DatabaseAwayDuringData(MailSink):
    """Accepts the message, but takes the database away while it does, for `outage` s."""

    def __init__(self, database: str, outage: float) -> None:
        super().__init__()
        self.database = database
        self.outage = outage
        self.timers: list[threading.Timer] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if not self.timers:  # the first message only
            database_away(self.database)
            timer = threading.Timer(self.outage, database_back, args=(self.database,))
            self.timers.append(timer)
            timer.start()
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def database_name(runtime: Runtime) -> Iterator[str]:
    url = make_url(runtime.config.database_url)
    if url.get_backend_name() != "postgresql":
        pytest.skip("refusing connections to one database: PostgreSQL only")
    assert url.database
    yield url.database
    database_back(url.database)  # whatever happened


def auto_add(api: Api) -> None:
    api.agency(seats=1, auto_add=True)
    for member in ("m1", "m2"):
        api.join(member)
        api.seat_request(member)


def status(ntf: Notifier, notification_id: int) -> str | None:
    """The row's status, or None while the database is away."""
    try:
        return str(ntf.row(notification_id).status)
    except OperationalError:
        return None


def expire_lease_and_sweep(ntf: Notifier) -> None:
    """What the sweep does ten minutes later with a row still `sending`."""
    with ntf.runtime.db.session() as session, session.begin():
        session.execute(
            update(Notification)
            .where(Notification.status == "sending")
            .values(claimed_at=utcnow() - timedelta(minutes=11))
        )
    ntf.requeue()
    ntf.work()


@pytest.mark.parametrize("outage", [3.0, 5.0], ids=["within-patience", "beyond-patience"])
def test_the_database_going_away_after_the_send_never_sends_twice(
    api: Api,
    notifier_factory: Callable[..., tuple[Notifier, Sink]],
    database_name: str,
    monkeypatch: pytest.MonkeyPatch,
    outage: float,
) -> None:
    # Beyond patience: the job gives up on the write; its RQ retry records the send.
    monkeypatch.setattr(delivery, "RECORD_PATIENCE", 30.0 if outage < 4 else 1.5)
    handler = DatabaseAwayDuringData(database_name, outage)
    ntf, sink = notifier_factory(handler, Retry(max=20, interval=[1]))
    auto_add(api)
    [row] = ntf.rows()

    ntf.work_until(lambda: status(ntf, row.id) == "sent", timeout=30)
    assert len(sink.messages) == 1
    expire_lease_and_sweep(ntf)  # the sweep finds nothing left to send
    ntf.work()

    assert len(sink.messages) == 1
    final = ntf.row(row.id)
    assert final.status == "sent"
    assert final.attempts == 1
    for timer in handler.timers:
        timer.join(timeout=10)
