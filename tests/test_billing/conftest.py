"""Billing worker fixtures: the Stripe emulator over HTTP, a private Redis, real RQ workers.

Redis: a private `redis-server` on a free port for the whole session when the
binary exists (the billing queue is named `billing` in every process, so a
shared Redis would let another test run's workers take our jobs); else the
test Redis (CI) or fakeredis served over TCP. Jobs run in real RQ workers: an
in-process `SimpleWorker` for most tests, `python -m workers.run worker`
subprocesses where a process must die or several must race.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import stripe
from flask import Flask
from rq import Queue, SimpleWorker
from rq.registry import ScheduledJobRegistry
from sqlalchemy import select

from seatsvc import enqueue
from seatsvc.billing.catalog import ensure_prices
from seatsvc.config import Config
from seatsvc.models import Agency, BillingOutbox, Notification, SeatPool
from seatsvc.runtime import Runtime
from stripe_emulator import StripeEmulator
from tests import backends
from tests.conftest import API_TOKEN, SECRET_KEY
from tests.helpers import Api
from workers import context

PROJECT_ROOT = Path(__file__).resolve().parents[2]
STRIPE_KEY = "sk_test_emulator"
# Short debounce so a test waits milliseconds, not seconds, for a coalesced update.
QUIET_MS = 150
MAX_WAIT_MS = 1500
LOCK_SECONDS = 5


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- Redis ---------------------------------------------------------------------------


class RedisServer:
    """A private `redis-server` subprocess: ours to flush, stop and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        probe = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        while True:
            try:
                probe.ping()
                break
            except redis.RedisError:
                assert self.process.poll() is None, "redis-server exited at start"
                assert time.monotonic() < deadline, "redis-server did not answer in time"
                time.sleep(0.05)
        probe.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.process = None


def redis_server_available() -> bool:
    return shutil.which("redis-server") is not None


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    if redis_server_available():
        server = RedisServer().start()
        yield server.url
        server.stop()
        return
    if backends.redis_reachable() is None:
        yield backends.TEST_REDIS_URL
        return
    from fakeredis import TcpFakeServer

    port = free_port()
    fake = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    yield f"redis://127.0.0.1:{port}/0"
    fake.shutdown()


def _forget_billing_keys(connection: redis.Redis) -> None:
    """Only our keys: the billing queue's jobs and registries, and the agency locks."""
    for pattern in ("rq:*billing*", "seatsvc:billing-lock:*", "rq:*notifications*"):
        for key in connection.scan_iter(match=pattern, count=500):
            connection.delete(key)


@pytest.fixture
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(redis_url)
    _forget_billing_keys(connection)
    yield connection
    _forget_billing_keys(connection)
    connection.close()


# --- Stripe --------------------------------------------------------------------------


@pytest.fixture(scope="session")
def emulator() -> Iterator[StripeEmulator]:
    emu = StripeEmulator()
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture
def emu(emulator: StripeEmulator) -> StripeEmulator:
    """A fresh emulator holding the two seat prices; the request log starts empty."""
    emulator.reset()
    ensure_prices(emulator.client())
    emulator.clear_requests()
    return emulator


# --- the service -----------------------------------------------------------------------


def billing_config(
    database: backends.TestDatabase, emu: StripeEmulator, redis_url: str, **extra: Any
) -> Config:
    """The suite's config pointed at the emulator and the private Redis, short debounce."""
    return Config(
        database_url=database.url,
        redis_url=redis_url,
        api_tokens=(API_TOKEN,),
        secret_key=SECRET_KEY,
        stripe_api_base=emu.base_url,
        stripe_api_key=STRIPE_KEY,
        billing_quiet_ms=QUIET_MS,
        billing_max_wait_ms=MAX_WAIT_MS,
        billing_lock_seconds=LOCK_SECONDS,
        testing=True,
        **extra,
    )


@pytest.fixture
def config(database: backends.TestDatabase, emu: StripeEmulator, redis_url: str) -> Config:
    return billing_config(database, emu, redis_url)


@dataclass
class Billing:
    """One test's billing side: its Runtime (installed for jobs), Redis, the emulator."""

    runtime: Runtime
    redis: redis.Redis
    emu: StripeEmulator
    api: Api
    backend: str
    redis_url: str

    # -- workers -------------------------------------------------------------------
    @property
    def queue(self) -> Queue:
        return enqueue.queue(self.redis, enqueue.BILLING_QUEUE)

    def work(self) -> None:
        """A real rq worker in this process until the billing queue is empty.

        With rq's scheduler (moving due retries back) only when a scheduled job is
        due: starting it costs about a second per burst.
        """
        due = ScheduledJobRegistry(queue=self.queue).get_jobs_to_schedule()
        worker = SimpleWorker([self.queue], connection=self.redis, serializer=enqueue.SERIALIZER)
        worker.work(burst=True, with_scheduler=bool(due), logging_level="WARNING")

    def work_until(self, done: Callable[[], bool], timeout: float = 30.0) -> None:
        """Burst workers (their scheduler moves due retries back) until `done()`."""
        deadline = time.monotonic() + timeout
        while not done():
            assert time.monotonic() < deadline, "billing did not converge in time"
            self.work()
            time.sleep(0.1)

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker process, web process or `flask` command."""
        config = self.runtime.config
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SEATSVC_", "STRIPE_", "BILLING_", "SMTP_"))
            and key not in ("DATABASE_URL", "REDIS_URL")
        }
        env.update(
            DATABASE_URL=config.database_url,
            REDIS_URL=self.redis_url,
            SEATSVC_API_TOKENS=API_TOKEN,
            SEATSVC_SECRET_KEY=SECRET_KEY,
            STRIPE_API_BASE=self.emu.base_url,
            STRIPE_API_KEY=STRIPE_KEY,
            BILLING_QUIET_MS=str(config.billing_quiet_ms),
            BILLING_MAX_WAIT_MS=str(config.billing_max_wait_ms),
            BILLING_LOCK_SECONDS=str(config.billing_lock_seconds),
            BILLING_INVOICE_MODE=config.billing_invoice_mode,
            PYTHONPATH=str(PROJECT_ROOT),
        )
        env.update(extra)
        return env

    def spawn_worker(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """`python -m workers.run worker` (the Procfile's process), in its own process group."""
        return subprocess.Popen(
            [sys.executable, "-m", "workers.run", "worker", *args],
            cwd=PROJECT_ROOT,
            env=self.env(**env),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def flask(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "flask", "--app", "seatsvc.wsgi", *args],
            cwd=PROJECT_ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    # -- the database side ---------------------------------------------------------
    def agency(self, agency_id: str) -> Agency:
        with self.runtime.db.session() as session:
            found = session.get(Agency, agency_id)
            assert found is not None, agency_id
            return found

    def pools(self, agency_id: str) -> dict[str, SeatPool]:
        with self.runtime.db.session() as session:
            rows = session.scalars(select(SeatPool).where(SeatPool.agency_id == agency_id))
            return {pool.seat_type: pool for pool in rows}

    def outbox(self, agency_id: str) -> BillingOutbox:
        with self.runtime.db.session() as session:
            found = session.get(BillingOutbox, agency_id)
            assert found is not None, agency_id
            return found

    def notifications(self, kind: str) -> list[Notification]:
        with self.runtime.db.session() as session:
            return list(
                session.scalars(
                    select(Notification).where(Notification.kind == kind).order_by(Notification.id)
                )
            )

    def in_sync(self, agency_id: str) -> bool:
        row = self.outbox(agency_id)
        pools = self.pools(agency_id)
        return row.status == "done" and all(p.billed == p.purchased for p in pools.values())

    # -- the Stripe side -------------------------------------------------------------
    @property
    def client(self) -> stripe.StripeClient:
        return self.emu.client()

    def subscription(self, agency_id: str) -> dict[str, Any]:
        sub_id = self.agency(agency_id).stripe_subscription_id
        assert sub_id, f"{agency_id} has no subscription"
        found = self.emu.get(sub_id)
        assert found is not None
        return found

    def stripe_quantity(self, agency_id: str, seat_type: str = "base") -> int:
        price = context.gateway(self.runtime).prices[seat_type]
        for item in self.subscription(agency_id)["items"]["data"]:
            if item["price"]["id"] == price:
                return int(item["quantity"])
        return 0

    def quantity_updates(self, agency_id: str) -> list[dict[str, Any]]:
        """Subscription updates that Stripe carried out (not replays, not failures)."""
        sub_id = self.agency(agency_id).stripe_subscription_id
        return [
            entry
            for entry in self.emu.requests(f"/v1/subscriptions/{sub_id}", "POST")
            if entry["status"] == 200 and not entry["replayed"]
        ]

    def pending_lines(self, customer_id: str) -> list[dict[str, Any]]:
        return [
            item
            for item in self.emu.objects("invoiceitem")
            if item["customer"] == customer_id and item["invoice"] is None
        ]

    def give_card(self, agency_id: str, card: str = "pm_card_visa") -> str:
        """Attach a test card to the agency's customer and make it the invoice default."""
        customer_id = self.agency(agency_id).stripe_customer_id
        assert customer_id
        method = self.client.v1.payment_methods.attach(card, {"customer": customer_id})
        self.client.v1.customers.update(
            customer_id, {"invoice_settings": {"default_payment_method": method.id}}
        )
        return str(method.id)

    # -- scenarios -----------------------------------------------------------------------
    def active_agency(
        self, agency_id: str, *, seats: int = 0, auto_add: bool = True, card: str = "pm_card_visa"
    ) -> None:
        """Created through the API, provisioned by the worker (0 Base seats: a $0 first
        invoice, so the subscription is active without a card), then given a card."""
        self.api.agency(agency_id, auto_add=auto_add, trial=False)
        self.work_until(lambda: self.agency(agency_id).stripe_subscription_id is not None)
        assert self.agency(agency_id).billing_status == "active"
        self.give_card(agency_id, card)
        if seats:
            self.api.ok("PUT", f"/v1/agencies/{agency_id}/seats/base", {"quantity": seats})
            self.work_until(lambda: self.in_sync(agency_id))
        self.emu.clear_requests()

    def join_and_login(self, member_ids: list[str], agency_id: str) -> list[Any]:
        outcomes = []
        for member_id in member_ids:
            self.api.join(member_id, agency_id)
            outcomes.append(self.api.seat_request(member_id, agency_id))
        return outcomes


@pytest.fixture
def bill(
    runtime: Runtime,
    redis_conn: redis.Redis,
    emu: StripeEmulator,
    app: Flask,
    api: Api,
    database: backends.TestDatabase,
    redis_url: str,
) -> Iterator[Billing]:
    context.install(runtime)
    context.install_gateway(runtime, None)
    yield Billing(runtime, redis_conn, emu, api, database.backend, redis_url)
    context.install_gateway(runtime, None)
    context.install(None)
    emu.clear_failures()


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc): rq's work horse leaves the worker's
    process group (`os.setpgrp`), so killing the group alone would spare it."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL a worker and everything it started (its work horse), as an OOM kill would."""
    if process.poll() is None:
        horses = descendants(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        for pid in horses:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


def finish(process: subprocess.Popen[bytes], timeout: float = 60) -> str:
    """Let a `--burst` worker empty its queue and leave by itself; returns its output."""
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        return stop_group(process)
    return out.decode(errors="replace")


def stop_group(process: subprocess.Popen[bytes], timeout: float = 15) -> str:
    """SIGTERM (rq's warm shutdown), SIGKILL if it lingers; returns what it printed."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
    out = process.stdout.read() if process.stdout else b""
    return out.decode(errors="replace")


def postgres_only(backend: str) -> None:
    if backend != "postgresql":
        pytest.skip("processes racing over one database: PostgreSQL only")
