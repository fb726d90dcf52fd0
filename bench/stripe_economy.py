"""Benchmark: what a burst of Auto-Add seat changes costs at Stripe.

seatsvc (seat-requests answered from the database, billing worker processes
coalescing the changes into absolute quantity updates, one daily proration
invoice) against the way popular libraries do it (Laravel Cashier's
`incrementQuantity`, Pay's `increment_quantity`, dj-stripe: one
`subscription_items.update(quantity=current + 1)` per seat, inline in the
request). Both run against the same in-process Stripe emulator, which applies
Stripe's limits (200 quantity updates per subscription per hour, 20 invoices a
day, 429 `lock_timeout` on concurrent writes to one subscription).

Prints figures; never asserts a timing. Run from the repository root:
`.venv/bin/python bench/stripe_economy.py [--sizes 10,100,1000] [--help]`.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psycopg  # noqa: E402
import redis  # noqa: E402
import stripe  # noqa: E402
from sqlalchemy import create_engine, insert, select  # noqa: E402

from seatsvc.app import create_app  # noqa: E402
from seatsvc.billing.catalog import ensure_prices  # noqa: E402
from seatsvc.config import Config  # noqa: E402
from seatsvc.migrate import upgrade  # noqa: E402
from seatsvc.models import Agency, BillingOutbox, Member, SeatPool  # noqa: E402
from stripe_emulator import StripeEmulator  # noqa: E402
from tests.backends import build_runtime  # noqa: E402
from workers import billing, context  # noqa: E402

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TOKEN = "bench-token-0123456789"
SECRET_KEY = "bench-secret-key-0123456789abcdef"
STRIPE_KEY = "sk_test_bench"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- the throwaway backends -------------------------------------------------------------


@contextmanager
def throwaway_database(kind: str) -> Iterator[str]:
    """A fresh migrated database (PostgreSQL, or SQLite in a temp dir), gone afterwards."""
    if kind == "postgresql":
        name = f"seatsvc_bench_{os.getpid()}_{int(time.time())}"
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
        try:
            url = f"{base}/{name}"
            upgrade(url)
            yield url
        finally:
            with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    with tempfile.TemporaryDirectory(prefix="seatsvc-bench-") as directory:
        url = f"sqlite:///{directory}/bench.sqlite3"
        upgrade(url)
        yield url


@contextmanager
def throwaway_redis() -> Iterator[str]:
    """A private redis-server on a free port (fakeredis over TCP if there is none)."""
    port = free_port()
    binary = shutil.which("redis-server")
    if binary is None:
        from fakeredis import TcpFakeServer

        fake = TcpFakeServer(("127.0.0.1", port), server_type="redis")
        threading.Thread(target=fake.serve_forever, daemon=True).start()
        try:
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            fake.shutdown()
        return
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        probe = redis.Redis.from_url(url)
        for _ in range(200):
            try:
                probe.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def postgres_answers() -> bool:
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


# --- one scenario's figures -----------------------------------------------------------------


@dataclass
class Figures:
    approach: str
    seats: int
    agencies: int
    calls: int  # every Stripe call, from the first seat-request until Stripe is final
    invoice_calls: int  # of which for invoices (seatsvc: the daily proration invoice)
    quantity_updates: int
    invoices: int
    refused: Counter[str]  # Stripe errors seen, by code
    final_ok: int  # agencies whose Stripe quantity equals the seats they added
    settle_seconds: float  # last seat-request answered -> Stripe holds the final quantity
    burst_seconds: float

    def row(self) -> str:
        per_seat = self.calls / self.seats if self.seats else 0.0
        sync_per_seat = (self.calls - self.invoice_calls) / self.seats if self.seats else 0.0
        errors = ", ".join(f"{code} {n}" for code, n in self.refused.most_common()) or "-"
        return (
            f"{self.approach:<22} {self.seats:>5} {self.agencies:>4} {self.burst_seconds:>7.1f}"
            f" {self.calls:>6} {sync_per_seat:>6.2f} {per_seat:>6.2f} {self.quantity_updates:>6}"
            f" {self.invoices / self.agencies:>8.2f} {self.settle_seconds:>7.2f}"
            f" {self.final_ok:>4}/{self.agencies:<4} {errors}"
        )


HEADER = (
    f"{'approach':<22} {'seats':>5} {'ags':>4} {'burst s':>7} {'calls':>6} {'sync/s':>6}"
    f" {'all/s':>6} {'q-upd':>6} {'inv/ag-d':>8} {'final s':>7} {'exact':>9} stripe errors"
)


def spread(seats: int, agencies: int) -> list[int]:
    """`seats` auto-adds spread over `agencies` (the first ones get the remainder)."""
    return [seats // agencies + (1 if index < seats % agencies else 0) for index in range(agencies)]


# --- seatsvc ---------------------------------------------------------------------------------


class Seatsvc:
    """The service in this process (the web side) and billing worker processes."""

    def __init__(self, config: Config, emu: StripeEmulator, workers: int) -> None:
        self.config = config
        self.emu = emu
        self.runtime = build_runtime(config)
        context.install(self.runtime)
        self.app = create_app(runtime=self.runtime)
        # The app logs every request and Stripe call at INFO: not what is measured here.
        logging.getLogger().setLevel(logging.WARNING)
        self.engine = create_engine(config.database_url)
        self.fleets: dict[int, list[str]] = {}
        self.seats: dict[str, int] = {}  # what each agency holds before the next burst
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SEATSVC_", "STRIPE_"))}
        env.update(
            DATABASE_URL=config.database_url,
            REDIS_URL=str(config.redis_url),
            SEATSVC_API_TOKENS=TOKEN,
            SEATSVC_SECRET_KEY=SECRET_KEY,
            STRIPE_API_BASE=emu.base_url,
            STRIPE_API_KEY=STRIPE_KEY,
            BILLING_QUIET_MS=str(config.billing_quiet_ms),
            BILLING_MAX_WAIT_MS=str(config.billing_max_wait_ms),
            BILLING_INVOICE_MODE="daily",
            PYTHONPATH=str(REPO_ROOT),
        )
        self.workers = [
            subprocess.Popen(
                [sys.executable, "-m", "workers.run", "worker"],
                cwd=REPO_ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]

    def close(self) -> None:
        for worker in self.workers:
            worker.terminate()
        for worker in self.workers:
            try:
                worker.wait(timeout=15)
            except subprocess.TimeoutExpired:
                worker.kill()
        self.runtime.db.dispose()
        self.engine.dispose()

    def call(self, client: Any, method: str, path: str, body: Any = None) -> Any:
        response = client.open(path, method=method, json=body, headers=HEADERS)
        assert response.status_code < 300, (path, response.status_code, response.get_json())
        return response.get_json()

    def wait(self, done: Callable[[], bool], what: str, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.02)

    def fleet(self, agencies: int) -> list[str]:
        """Agencies with Auto-Add ON, provisioned in Stripe (0 seats), a card on file;
        made once per size of fleet, then every burst adds seats on top."""
        if agencies in self.fleets:
            return self.fleets[agencies]
        client = self.app.test_client()
        ids = [f"f{agencies}-a{index:02d}" for index in range(agencies)]
        for agency_id in ids:
            path = f"/v1/agencies/{agency_id}"
            body = {"name": agency_id, "admin_emails": ["a@b.example"], "trial": False}
            self.call(client, "PUT", path, body)
            self.call(client, "POST", f"{path}/baa", {})
            self.call(client, "PATCH", f"{path}/settings", {"auto_add_seats": True})
        self.wait(lambda: self.pending(ids) == 0, "provisioning")
        stripe_client = self.emu.client()
        with self.engine.connect() as connection:
            customers = connection.execute(
                select(Agency.stripe_customer_id).where(Agency.id.in_(ids))
            ).scalars()
            for customer in customers:
                method = stripe_client.v1.payment_methods.attach(
                    "pm_card_visa", {"customer": str(customer)}
                )
                stripe_client.v1.customers.update(
                    str(customer), {"invoice_settings": {"default_payment_method": method.id}}
                )
        self.fleets[agencies] = ids
        self.seats.update(dict.fromkeys(ids, 0))
        return ids

    def add_members(self, tag: str, ids: list[str], counts: list[int]) -> None:
        """Clinicians who joined and have not logged in yet (bulk SQL, not measured)."""
        rows = [
            {
                "id": f"{agency_id}-{tag}-{number:05d}",
                "agency_id": agency_id,
                "email": f"m{number}@{agency_id}.example",
                "seat_type": "base",
                "status": "pending_login",
                "source": "auto_join",
            }
            for agency_id, count in zip(ids, counts, strict=True)
            for number in range(count)
        ]
        if rows:
            with self.engine.begin() as connection:
                connection.execute(insert(Member), rows)

    def pending(self, ids: list[str], invoices: bool = True) -> int:
        """Agencies whose billing has not converged (or, with `invoices`, owe an invoice)."""
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(BillingOutbox.status, BillingOutbox.invoice_needed).where(
                    BillingOutbox.agency_id.in_(ids)
                )
            ).all()
        return sum(1 for status, owed in rows if status != "done" or (invoices and owed))

    def stripe_quantities(self, ids: list[str]) -> dict[str, int]:
        with self.engine.connect() as connection:
            subs = dict(
                connection.execute(
                    select(Agency.id, Agency.stripe_subscription_id).where(Agency.id.in_(ids))
                ).all()
            )
        found = {}
        for agency_id, sub_id in subs.items():
            sub = self.emu.get(str(sub_id)) or {"items": {"data": []}}
            found[agency_id] = sum(int(item["quantity"]) for item in sub["items"]["data"])
        return found

    def run(self, seats: int, agencies: int, threads: int) -> Figures:
        counts = spread(seats, agencies)
        ids = self.fleet(agencies)
        tag = f"n{seats}"
        self.add_members(tag, ids, counts)
        adds = dict(zip(ids, counts, strict=True))
        wanted = {agency_id: self.seats[agency_id] + adds[agency_id] for agency_id in ids}
        invoices_before = len(self.emu.objects("invoice"))
        self.emu.clear_requests()
        requests = [
            f"/v1/agencies/{agency_id}/members/{agency_id}-{tag}-{number:05d}/seat-request"
            for number in range(max(counts))
            for agency_id in ids
            if number < adds[agency_id]
        ]
        local = threading.local()

        def seat_request(path: str) -> str:
            if not hasattr(local, "client"):
                local.client = self.app.test_client()
            return str(self.call(local.client, "POST", path)["outcome"])

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=threads) as pool:
            outcomes = Counter(pool.map(seat_request, requests))
        last_answer = time.monotonic()
        assert outcomes == Counter({"auto_added": len(requests)}), outcomes
        self.wait(lambda: self.stripe_quantities(ids) == wanted, "Stripe's final quantities")
        settled = time.monotonic()
        self.wait(lambda: self.pending(ids, invoices=False) == 0, "the ledger to catch up")
        # The day ends: the scheduler's daily job invoices each agency's prorations once.
        billing.invoice_due()
        self.wait(lambda: self.pending(ids) == 0, "the daily invoices")
        log = self.emu.requests()
        invoices = len(self.emu.objects("invoice")) - invoices_before
        with self.engine.connect() as connection:
            billed = dict(
                connection.execute(
                    select(SeatPool.agency_id, SeatPool.billed).where(
                        SeatPool.agency_id.in_(ids), SeatPool.seat_type == "base"
                    )
                ).all()
            )
        self.seats.update(wanted)
        return Figures(
            approach="seatsvc (coalesced)",
            seats=seats,
            agencies=agencies,
            calls=len(log),
            invoice_calls=sum(1 for e in log if e["path"].startswith("/v1/invoice")),
            quantity_updates=sum(
                1
                for e in log
                if e["method"] == "POST"
                and e["path"].startswith("/v1/subscriptions/")
                and e["status"] == 200
                and not e["replayed"]
            ),
            invoices=invoices,
            refused=Counter(str(e["status"]) for e in log if e["status"] != 200),
            final_ok=sum(1 for a in ids if billed[a] == wanted[a]),
            settle_seconds=settled - last_answer,
            burst_seconds=last_answer - started,
        )


# --- the baseline: one increment per seat, inline ----------------------------------------------


def run_baseline(
    emu: StripeEmulator, prices: dict[str, str], seats: int, agencies: int, threads: int,
    invoice_each: bool,
) -> Figures:  # fmt: skip
    """`subscription_items.update(quantity=current + 1)` per auto-add, from the request.

    `current` is the library's own copy of the quantity (Cashier and Pay keep it in
    their subscription_items table), read before the call and saved after it; the
    SDK's default network retries (2, on 409/429 lock_timeout/5xx) are on.
    """
    client = emu.client(STRIPE_KEY, max_network_retries=2)
    counts = spread(seats, agencies)
    items: list[str] = []
    for index in range(agencies):
        customer = client.v1.customers.create(
            {
                "email": f"baseline{index}@bench.example",
                "payment_method": "pm_card_visa",
                "invoice_settings": {"default_payment_method": "pm_card_visa"},
            }
        )
        sub = client.v1.subscriptions.create(
            {"customer": customer.id, "items": [{"price": prices["base"], "quantity": 0}]}
        )
        items.append(str(sub["items"]["data"][0]["id"]))
    current = dict.fromkeys(items, 0)
    proration = "always_invoice" if invoice_each else "create_prorations"
    invoices_before = len(emu.objects("invoice"))
    emu.clear_requests()
    tasks = [items[index] for number in range(max(counts)) for index in range(agencies)
             if number < counts[index]]  # fmt: skip
    refused: Counter[str] = Counter()
    lock = threading.Lock()

    def increment(item_id: str) -> None:
        quantity = current[item_id]
        try:
            client.v1.subscription_items.update(
                item_id, {"quantity": quantity + 1, "proration_behavior": proration}
            )
        except stripe.StripeError as error:
            code = (error.json_body or {}).get("error", {}).get("code") or str(error.http_status)
            with lock:
                refused[str(code)] += 1
            return
        current[item_id] = quantity + 1

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(increment, tasks))
    last_answer = time.monotonic()
    log = emu.requests()
    final_ok = 0
    for index, item_id in enumerate(items):
        item = emu.get(item_id)
        final_ok += int(item is not None and int(item["quantity"]) == counts[index])
    return Figures(
        approach="baseline +1" + (" & invoice" if invoice_each else ""),
        seats=seats,
        agencies=agencies,
        calls=len(log),
        invoice_calls=0,  # always_invoice invoices inside the update call itself
        quantity_updates=sum(1 for e in log if e["status"] == 200 and not e["replayed"]),
        invoices=len(emu.objects("invoice")) - invoices_before,
        refused=refused,
        final_ok=final_ok,
        settle_seconds=0.0,  # synchronous: whatever Stripe holds at the last answer stays
        burst_seconds=last_answer - started,
    )


# --- main ------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10,100,1000", help="burst sizes (seats added)")
    parser.add_argument("--agencies", type=int, default=50, help="the many-agencies case")
    parser.add_argument("--workers", type=int, default=2, help="billing worker processes")
    parser.add_argument("--threads", type=int, default=8, help="concurrent seat-requests")
    parser.add_argument("--quiet-ms", type=int, default=500, help="BILLING_QUIET_MS")
    parser.add_argument("--max-wait-ms", type=int, default=5000, help="BILLING_MAX_WAIT_MS")
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default=None)
    parser.add_argument("--no-baseline", action="store_true", help="seatsvc only")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    kind = args.database or ("postgresql" if postgres_answers() else "sqlite")

    emu = StripeEmulator()
    emu.start()
    prices = ensure_prices(emu.client())
    rows: list[Figures] = []
    began = time.monotonic()
    try:
        with throwaway_database(kind) as url, throwaway_redis() as redis_url:
            config = Config(
                database_url=url,
                redis_url=redis_url,
                api_tokens=(TOKEN,),
                secret_key=SECRET_KEY,
                stripe_api_base=emu.base_url,
                stripe_api_key=STRIPE_KEY,
                billing_quiet_ms=args.quiet_ms,
                billing_max_wait_ms=args.max_wait_ms,
            )
            service = Seatsvc(config, emu, args.workers)
            try:
                print(f"database {kind}, {args.workers} billing workers, {args.threads} threads,"
                      f" debounce {args.quiet_ms}/{args.max_wait_ms} ms\n")  # fmt: skip
                print(HEADER)
                for seats in sizes:
                    for agencies in sorted({1, args.agencies}):
                        runs = [lambda s=seats, a=agencies: service.run(s, a, args.threads)]
                        if not args.no_baseline:
                            for each in (False, True):
                                runs.append(
                                    lambda s=seats, a=agencies, e=each: run_baseline(
                                        emu, prices, s, a, args.threads, e
                                    )
                                )
                        for run in runs:
                            figures = run()
                            rows.append(figures)
                            print(figures.row(), flush=True)
            finally:
                service.close()
    finally:
        emu.stop()
    print(f"\n{time.monotonic() - began:.0f} s in all")
    print(
        "calls: every Stripe call from the first seat-request until Stripe holds the final\n"
        "quantity (seatsvc: and its daily invoice); sync/s, all/s: calls per seat added\n"
        "without / with the invoice calls; q-upd: quantity updates Stripe applied;\n"
        "inv/ag-d: invoices per agency for the day; final s: last seat-request answered ->\n"
        "Stripe final (baseline: synchronous, 0); exact: agencies whose Stripe quantity\n"
        "equals the seats added."
    )


if __name__ == "__main__":
    main()
