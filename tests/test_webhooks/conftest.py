"""Webhook fixtures: the billing fixtures (emulator over HTTP, private Redis, real RQ
workers) plus the app served over real HTTP, registered as the emulator's endpoint."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import requests
from flask import Flask
from sqlalchemy import delete, select
from werkzeug.serving import BaseWSGIServer, make_server

from seatsvc.config import Config
from seatsvc.models import SeatEvent, StripeEvent
from stripe_emulator import StripeEmulator
from stripe_emulator.events import sign
from tests import backends
from tests.test_billing import conftest as billing_fixtures
from tests.test_billing.conftest import (
    Billing,
    free_port,
)

# The billing suite's fixtures, reused as they are: emulator, private Redis, RQ workers.
emulator = billing_fixtures.emulator
emu = billing_fixtures.emu
redis_url = billing_fixtures.redis_url
redis_conn = billing_fixtures.redis_conn
bill = billing_fixtures.bill

SECRET = "whsec_test_current_0123456789"
OLD_SECRET = "whsec_test_previous_0123456789"  # still accepted during a rotation


@pytest.fixture
def config(database: backends.TestDatabase, emu: StripeEmulator, redis_url: str) -> Config:
    return billing_fixtures.billing_config(
        database, emu, redis_url,
        stripe_webhook_secrets=(SECRET, OLD_SECRET), max_content_length=64 * 1024,
    )  # fmt: skip


@dataclass
class Hooks:
    """The webhook side of one test: the app's URL and what it stored."""

    bill: Billing
    url: str

    @property
    def endpoint(self) -> str:
        return f"{self.url}/webhooks/stripe"

    def post(
        self,
        body: bytes | dict[str, Any],
        secret: str = SECRET,
        timestamp: int | None = None,
        header: str | None = None,
    ) -> requests.Response:
        raw = json.dumps(body).encode() if isinstance(body, dict) else body
        headers = {"Content-Type": "application/json"}
        signature = header if header is not None else sign(raw.decode(errors="replace"), secret,
                                                           timestamp)  # fmt: skip
        if signature:
            headers["Stripe-Signature"] = signature
        return requests.post(self.endpoint, data=raw, headers=headers, timeout=10)

    def listen(self, enabled: bool = True, **mode: Any) -> None:
        """Register the app as the emulator's webhook endpoint (from now on)."""
        self.bill.emu.add_webhook_endpoint(self.endpoint, SECRET)
        self.bill.emu.webhook_mode(enabled=enabled, **mode)

    def settle(self, timeout: float = 30.0) -> None:
        """Deliveries done, then workers until no event waits to be handled."""
        deadline = time.monotonic() + timeout
        while True:
            assert self.bill.emu.wait_for_webhooks(timeout=timeout)
            self.bill.work()
            if not self.unhandled() and self.bill.emu.dispatcher.pending() == 0:
                return
            assert time.monotonic() < deadline, "events were not handled in time"
            time.sleep(0.05)

    def rows(self) -> list[StripeEvent]:
        with self.bill.runtime.db.session() as session:
            return list(session.scalars(select(StripeEvent).order_by(StripeEvent.created)))

    def row(self, event_id: str) -> StripeEvent:
        with self.bill.runtime.db.session() as session:
            found = session.get(StripeEvent, event_id)
            assert found is not None, event_id
            return found

    def unhandled(self) -> list[str]:
        return [row.id for row in self.rows() if row.status == "received"]

    def ledger(self, agency_id: str, event_type: str | None = None) -> list[SeatEvent]:
        with self.bill.runtime.db.session() as session:
            query = select(SeatEvent).where(SeatEvent.agency_id == agency_id)
            if event_type:
                query = query.where(SeatEvent.type == event_type)
            return list(session.scalars(query.order_by(SeatEvent.id)))


def serve(app: Flask) -> tuple[BaseWSGIServer, str]:
    server = make_server("127.0.0.1", free_port(), app, threaded=True)
    threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    ).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def forget_stripe_jobs(connection: redis.Redis) -> None:
    """Our job hashes (`rq:job:stripe-...`) are not covered by the billing fixture's cleanup."""
    for key in connection.scan_iter(match="rq:*stripe-*", count=500):
        connection.delete(key)


@pytest.fixture
def hooks(bill: Billing, app: Flask, redis_conn: redis.Redis) -> Iterator[Hooks]:
    forget_stripe_jobs(redis_conn)
    server, url = serve(app)
    try:
        yield Hooks(bill, url)
    finally:
        bill.emu.webhook_mode(enabled=False)
        bill.emu.wait_for_webhooks(timeout=5)
        server.shutdown()
        server.server_close()
        forget_stripe_jobs(redis_conn)
        with bill.runtime.db.session() as session, session.begin():
            session.execute(delete(StripeEvent))  # not in tests.backends' table list
