"""Benchmark: signed Stripe webhooks accepted and stored, and the reconcile sweep's cost.

Part 1 (same run, same server): gunicorn serving `bench.baseline_app:app` on a
throwaway PostgreSQL database; client threads in several OS processes first hit
the bare `/bench/baseline` endpoint (bench/seat_request.py's baseline), then POST
signed `customer.subscription.updated` events, each with a new id, to
`/webhooks/stripe` (verify the signature, INSERT ... ON CONFLICT DO NOTHING,
enqueue the handler job after commit). Every 2xx is checked against the rows.

Part 2: the reconcile sweep over `--agencies` agencies (10,000 by default) in the
Stripe emulator, in this process: subscriptions are created in the emulator's
store directly (its own code, no HTTP: the API would take minutes), agencies are
inserted in bulk through SQL, `--drifted` of them changed "in the dashboard".
Prints Stripe calls and seconds for a sweep that heals, one where all agree,
and a cold recovery of missed events. Never fails on a timing.

Run from the repository root: `.venv/bin/python bench/webhook_ingest.py`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import requests  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from bench.seat_request import (  # noqa: E402
    SECRET_KEY,
    TOKEN,
    PhaseResult,
    create_database,
    drop_database,
    print_phases,
    run_clients,
    run_phase,
    timed_call,
)
from seatsvc.billing.catalog import ensure_prices  # noqa: E402
from seatsvc.billing.reconcile import compare_with_stripe  # noqa: E402
from seatsvc.config import Config  # noqa: E402
from seatsvc.models import Agency, BillingOutbox, SeatPool  # noqa: E402
from stripe_emulator import StripeEmulator, routes_core, subscriptions  # noqa: E402
from stripe_emulator.events import sign  # noqa: E402
from tests.backends import build_runtime  # noqa: E402
from tests.live_server import LiveServer, start_gunicorn  # noqa: E402
from webhooks.recovery import recover_missed_events  # noqa: E402
from workers import context  # noqa: E402

WEBHOOK_SECRET = "whsec_bench_0123456789abcdef"


# --- part 1: ingest -----------------------------------------------------------------------


def _webhook_client_process(
    base_url: str, template: str, threads: int, duration: float, barrier: Any, results: Any
) -> None:
    """`threads` keep-alive clients POSTing signed events, each with a fresh id."""
    pid = os.getpid()

    def loop(index: int, local: PhaseResult, running: Callable[[], bool]) -> None:
        number = 0
        with requests.Session() as http:
            while running():
                number += 1
                body = template.replace("evt_TEMPLATE", f"evt_bench_{pid}_{index}_{number}")
                headers = {
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign(body, WEBHOOK_SECRET),
                }
                url = f"{base_url}/webhooks/stripe"
                timed_call(local, http.post, url, data=body.encode(), headers=headers, timeout=60)

    run_clients("POST /webhooks/stripe", threads, duration, barrier, results, loop)


def run_webhook_phase(
    server: LiveServer, template: str, processes: int, threads: int, duration: float
) -> PhaseResult:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    launched = [
        ctx.Process(
            target=_webhook_client_process,
            args=(server.url, template, threads, duration, barrier, results),
        )
        for _ in range(processes)
    ]
    for process in launched:
        process.start()
    total = PhaseResult("POST /webhooks/stripe")
    for _ in launched:
        total.merge(results.get(timeout=duration + 120))
    for process in launched:
        process.join(timeout=30)
    return total


def event_template(emu: StripeEmulator) -> str:
    """A real `customer.subscription.updated` event as the emulator renders it (~KB)."""
    client = emu.client()
    prices = ensure_prices(client)
    customer = client.v1.customers.create({"name": "Template"})
    sub = client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": prices["base"], "quantity": 2}],
         "trial_period_days": 30}
    )  # fmt: skip
    client.v1.subscriptions.update(
        sub.id, {"items": [{"id": sub["items"].data[0].id, "quantity": 3}]}
    )
    event = emu.events("customer.subscription.updated")[-1]
    event["id"] = "evt_TEMPLATE"
    return json.dumps(event, indent=2)


def print_ingest(phases: list[PhaseResult], args: argparse.Namespace, stored: int) -> None:
    print_phases(phases, args, "webhook")
    hooks = phases[1]
    print(f"events answered 2xx: {hooks.ok}; rows in stripe_events: {stored}")


# --- part 2: the reconcile sweep ------------------------------------------------------------


def seed_stripe(emu: StripeEmulator, count: int) -> list[dict[str, Any]]:
    """Customers and trialing subscriptions through the emulator's own code (no HTTP)."""
    prices = ensure_prices(emu.client())
    ctx = emu._ctx()
    made = []
    for index in range(count):
        quantity = 1 + index % 5
        with emu.store.mutex:
            customer = routes_core.create_customer(ctx, {"name": f"Agency {index}"})
            sub = subscriptions.create_subscription(
                ctx,
                {
                    "customer": customer["id"],
                    "items": [{"price": prices["base"], "quantity": str(quantity)}],
                    "trial_period_days": "30",
                    "metadata": {"agency_id": f"rec-{index:05d}"},
                },
            )
        ctx.flush()
        rendered = emu.get(sub["id"])
        assert rendered is not None
        made.append(
            {
                "agency": f"rec-{index:05d}",
                "customer": customer["id"],
                "subscription": sub["id"],
                "item": rendered["items"]["data"][0]["id"],
                "quantity": quantity,
                "trial_end": rendered["trial_end"],
            }
        )
    return made


def seed_agencies(url: str, made: list[dict[str, Any]]) -> None:
    now = datetime.now(UTC)
    agencies, pools, rows = [], [], []
    for entry in made:
        agencies.append(
            {
                "id": entry["agency"], "name": entry["agency"], "admin_emails": ["a@b.example"],
                "stripe_customer_id": entry["customer"],
                "stripe_subscription_id": entry["subscription"],
                "trial_requested": False, "baa_signed_at": now, "auto_add_seats": False,
                "billing_status": "trialing", "trial_seat_limit": 10,
                "trial_ends_at": datetime.fromtimestamp(entry["trial_end"], UTC),
                "created_at": now, "updated_at": now,
            }
        )  # fmt: skip
        pools.append(
            {"agency_id": entry["agency"], "seat_type": "base", "purchased": entry["quantity"],
             "billed": entry["quantity"], "billed_at": now, "stripe_item_id": entry["item"]}
        )  # fmt: skip
        pools.append(
            {"agency_id": entry["agency"], "seat_type": "voice", "purchased": 0, "billed": 0,
             "billed_at": now, "stripe_item_id": None}
        )  # fmt: skip
        rows.append(
            {"agency_id": entry["agency"], "desired_version": 1, "synced_version": 1,
             "status": "done", "attempts": 0, "window_updates": 0, "invoice_needed": False,
             "invoices_today": 0, "created_at": now, "updated_at": now}
        )  # fmt: skip
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Agency), agencies)
            connection.execute(insert(SeatPool), pools)
            connection.execute(insert(BillingOutbox), rows)
    finally:
        engine.dispose()


def run_reconcile(url: str, emu: StripeEmulator, args: argparse.Namespace) -> None:
    started = time.monotonic()
    made = seed_stripe(emu, args.agencies)
    seed_agencies(url, made)
    seeded_in = time.monotonic() - started
    for entry in made[:: max(1, len(made) // max(1, args.drifted))][: args.drifted]:
        emu.dashboard_set_quantity(entry["item"], entry["quantity"] + 2)
    config = Config(
        database_url=url, api_tokens=(TOKEN,), secret_key=SECRET_KEY,
        stripe_api_base=emu.base_url, stripe_api_key="sk_test_bench",
    )  # fmt: skip
    runtime = build_runtime(config)
    context.install(runtime)
    gateway = context.gateway(runtime)
    print()
    print(
        f"reconcile: {args.agencies} agencies seeded in {seeded_in:.0f} s (emulator store "
        f"directly + SQL bulk insert); {args.drifted} changed in the dashboard"
    )
    header = f"{'sweep':<34}{'Stripe calls':>14}{'seconds':>10}{'adopted':>9}{'agree':>8}"
    print(header)
    print("-" * len(header))
    for label in ("first (heals the drifted)", "second (all agree)"):
        emu.clear_requests()
        report = compare_with_stripe(runtime, gateway)
        logged = len(emu.requests())
        print(
            f"{label:<34}{report.stripe_calls:>14}{report.seconds:>10.1f}"
            f"{len(report.adopted):>9}{report.in_agreement:>8}"
        )
        assert logged == report.stripe_calls, (logged, report.stripe_calls)
    emu.clear_requests()
    clock = time.monotonic()
    calls_before = gateway.calls
    recovered = recover_missed_events(runtime, gateway)
    print(
        f"{'cold event recovery':<34}{gateway.calls - calls_before:>14}"
        f"{time.monotonic() - clock:>10.1f}"
        f"   ({recovered} events stored and enqueued)"
    )
    runtime.db.dispose()


# --- main -------------------------------------------------------------------------------------


def count_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            found: int = connection.execute(text("SELECT count(*) FROM stripe_events")).scalar_one()
            return found
    finally:
        engine.dispose()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads per process")
    parser.add_argument("--processes", type=int, default=2, help="client OS processes")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--agencies", type=int, default=10_000, help="agencies to reconcile")
    parser.add_argument("--drifted", type=int, default=100, help="changed in the dashboard")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    parser.add_argument("--skip-ingest", action="store_true", help="only the reconcile sweep")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", ""),
        help="Redis for the after-commit enqueue (default: each worker's embedded fake Redis)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    emu = StripeEmulator()
    emu.start()
    name, url = create_database()
    server: LiveServer | None = None
    try:
        if not args.skip_ingest:
            template = event_template(emu)
            env = {
                "DATABASE_URL": url,
                "SEATSVC_API_TOKENS": TOKEN,
                "SEATSVC_SECRET_KEY": SECRET_KEY,
                "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "REDIS_URL": args.redis_url,
            }
            log = Path(tempfile.mkdtemp(prefix="seatsvc-bench-")) / "gunicorn.log"
            server = start_gunicorn(
                "bench.baseline_app:app", env, log,
                workers=args.workers, threads=args.threads, access_log=False,
            )  # fmt: skip
            common = (args.processes, args.concurrency)
            if args.warmup > 0:
                run_phase(server, "warmup", *common, args.warmup, None, 1)
                run_webhook_phase(server, template, *common, args.warmup)
            baseline = run_phase(server, "GET /bench/baseline", *common, args.duration, None, 1)
            before = count_rows(url)
            hooks = run_webhook_phase(server, template, *common, args.duration)
            print_ingest([baseline, hooks], args, count_rows(url) - before)
            server.stop()
            server = None
            emu.reset()
        run_reconcile(url, emu, args)
    finally:
        if server is not None:
            server.stop()
        drop_database(name)
        emu.stop()


if __name__ == "__main__":
    main()
