"""Benchmark: first-login seat-requests against a bare one-transaction endpoint.

Creates a throwaway PostgreSQL database, migrates it, starts gunicorn serving
`bench.baseline_app:app` (seatsvc plus `/bench/baseline`), seeds agencies with
Auto-Add ON and pending members, then drives client threads in several OS
processes: first at the baseline, then at seat-requests (every request is a
different member's first login). Prints throughput and latency; never fails on
a timing. Run from the repository root: `.venv/bin/python bench/seat_request.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import psycopg  # noqa: E402
import requests  # noqa: E402
from sqlalchemy import create_engine, insert, text  # noqa: E402

from bench.stripe_economy import throwaway_redis  # noqa: E402
from seatsvc.migrate import upgrade  # noqa: E402
from seatsvc.models import Member  # noqa: E402
from tests.live_server import LiveServer, start_gunicorn  # noqa: E402

ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TOKEN = "bench-token-0123456789"
SECRET_KEY = "bench-secret-key-0123456789abcdef"


# --- the throwaway database --------------------------------------------------------------


def create_database() -> tuple[str, str]:
    """A fresh, migrated database: (its name, its SQLAlchemy URL)."""
    name = f"seatsvc_bench_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = ADMIN_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    url = f"{base}/{name}"
    try:
        upgrade(url)
    except BaseException:
        drop_database(name)
        raise
    return name, url


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- seeding ------------------------------------------------------------------------------


def agency_id(index: int) -> str:
    return f"bench-{index:03d}"


def member_path(number: int, agencies: int) -> str:
    member = f"b{number:06d}"
    return f"/v1/agencies/{agency_id(number % agencies)}/members/{member}/seat-request"


def seed(server: LiveServer, url: str, agencies: int, seats: int, members: int) -> None:
    """Agencies through the API (Auto-Add ON), members in bulk through SQL (pending_login)."""
    with requests.Session() as http:
        http.headers["Authorization"] = f"Bearer {TOKEN}"
        for index in range(agencies):
            path = f"{server.url}/v1/agencies/{agency_id(index)}"
            steps: list[tuple[str, str, dict[str, Any]]] = [
                ("PUT", "", {"name": f"Bench {index}", "admin_emails": ["a@b.example"],
                             "trial": False}),
                ("POST", "/baa", {}),
                ("PUT", "/seats/base", {"quantity": seats}),
                ("PATCH", "/settings", {"auto_add_seats": True}),
            ]  # fmt: skip
            for method, suffix, body in steps:
                http.request(method, path + suffix, json=body, timeout=30).raise_for_status()
    rows = [
        {
            "id": f"b{number:06d}",
            "agency_id": agency_id(number % agencies),
            "email": f"b{number:06d}@bench.example",
            "seat_type": "base",
            "status": "pending_login",
            "source": "auto_join",
        }
        for number in range(members)
    ]
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(insert(Member), rows)
    finally:
        engine.dispose()


# --- clients ------------------------------------------------------------------------------


@dataclass
class PhaseResult:
    endpoint: str
    latencies: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)
    elapsed: float = 0.0
    exhausted: bool = False

    def merge(self, other: PhaseResult) -> None:
        self.latencies += other.latencies
        self.statuses.update(other.statuses)
        self.outcomes.update(other.outcomes)
        self.elapsed = max(self.elapsed, other.elapsed)
        self.exhausted |= other.exhausted

    @property
    def ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def per_second(self) -> float:
        return self.ok / self.elapsed if self.elapsed else 0.0

    def percentile_ms(self, fraction: float) -> float:
        if len(self.latencies) < 2:
            return self.latencies[0] * 1000 if self.latencies else float("nan")
        cuts = statistics.quantiles(self.latencies, n=1000, method="inclusive")
        return cuts[round(fraction * 1000) - 1] * 1000


def timed_call(
    local: PhaseResult, send: Callable[..., requests.Response], *args: Any, **kwargs: Any
) -> requests.Response | None:
    """`send(*args, **kwargs)`, its latency and status recorded in `local` (-1: no answer)."""
    started = time.perf_counter()
    try:
        response: requests.Response | None = send(*args, **kwargs)
    except requests.RequestException:
        response = None
    local.latencies.append(time.perf_counter() - started)
    local.statuses[response.status_code if response is not None else -1] += 1
    return response


ClientLoop = Callable[[int, PhaseResult, Callable[[], bool]], None]


def run_clients(
    endpoint: str, threads: int, duration: float, barrier: Any, results: Any, loop: ClientLoop
) -> None:
    """`threads` clients in this process, released with the other processes' at once.

    Each runs `loop(index, its PhaseResult, still_running)`; their results are merged
    and put on `results` with the phase's wall time.
    """
    go = threading.Barrier(threads + 1)
    outcome = PhaseResult(endpoint)
    lock = threading.Lock()
    end = [0.0]

    def client(index: int) -> None:
        local = PhaseResult(endpoint)
        go.wait()
        loop(index, local, lambda: time.monotonic() < end[0])
        with lock:
            outcome.merge(local)

    workers = [threading.Thread(target=client, args=(index,)) for index in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    started = time.monotonic()
    end[0] = started + duration
    go.wait()
    for worker in workers:
        worker.join()
    outcome.elapsed = time.monotonic() - started
    results.put(outcome)


def _client_process(
    base_url: str,
    endpoint: str,
    paths: list[list[str]] | None,
    threads: int,
    duration: float,
    barrier: Any,
    results: Any,
) -> None:
    """`threads` keep-alive clients in this process, looping until the phase ends."""

    def loop(index: int, local: PhaseResult, running: Callable[[], bool]) -> None:
        mine = iter(paths[index]) if paths is not None else None
        with requests.Session() as http:
            http.headers["Authorization"] = f"Bearer {TOKEN}"
            while running():
                if mine is None:
                    path, method = "/bench/baseline", "GET"
                else:
                    path, method = next(mine, ""), "POST"
                    if not path:
                        local.exhausted = True
                        break
                response = timed_call(local, http.request, method, base_url + path, timeout=60)
                if mine is not None and response is not None and response.status_code == 200:
                    local.outcomes[response.json()["outcome"]] += 1

    run_clients(endpoint, threads, duration, barrier, results, loop)


def run_phase(
    server: LiveServer,
    endpoint: str,
    processes: int,
    threads: int,
    duration: float,
    member_numbers: list[int] | None,
    agencies: int,
) -> PhaseResult:
    """One measured phase: `processes` x `threads` clients for `duration` seconds."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    clients = processes * threads
    launched = []
    for process_index in range(processes):
        paths = None
        if member_numbers is not None:
            paths = [
                [member_path(n, agencies) for n in member_numbers[slot::clients]]
                for slot in range(process_index * threads, (process_index + 1) * threads)
            ]
        worker = context.Process(
            target=_client_process,
            args=(server.url, endpoint, paths, threads, duration, barrier, results),
        )
        worker.start()
        launched.append(worker)
    total = PhaseResult(endpoint)
    for _ in launched:
        total.merge(results.get(timeout=duration + 120))
    for worker in launched:
        worker.join(timeout=30)
    return total


# --- report -------------------------------------------------------------------------------


def print_phases(
    phases: list[PhaseResult], args: argparse.Namespace, name: str, setup: str = ""
) -> None:
    """The setup line, one row per endpoint, and `name / baseline` ratios."""
    print()
    print(
        f"gunicorn {args.workers} workers x {args.threads} threads; clients "
        f"{args.processes} processes x {args.concurrency} threads; {args.duration:.0f} s per "
        f"endpoint; {setup}PostgreSQL; "
        f"Redis {args.redis_url or 'embedded fake'}; {os.cpu_count()} CPUs"
    )
    width = max(22, *(len(phase.endpoint) + 2 for phase in phases))
    header = f"{'endpoint':<{width}}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
    header += f"{'non-2xx':>9}"
    print(header)
    print("-" * len(header))
    for phase in phases:
        failed = sum(count for status, count in phase.statuses.items() if not 200 <= status < 300)
        print(
            f"{phase.endpoint:<{width}}{phase.ok:>10}{phase.per_second:>10.1f}"
            f"{phase.percentile_ms(0.50):>10.1f}{phase.percentile_ms(0.99):>10.1f}{failed:>9}"
        )
    baseline, measured = phases
    if baseline.per_second and measured.per_second:
        print(
            f"{name} / baseline: throughput x{measured.per_second / baseline.per_second:.2f}, "
            f"p50 x{measured.percentile_ms(0.5) / baseline.percentile_ms(0.5):.2f}"
        )


def print_report(phases: list[PhaseResult], args: argparse.Namespace) -> None:
    print_phases(phases, args, "seat-request", f"{args.agencies} agencies; ")
    seat = phases[1]
    print(f"seat-request outcomes: {dict(seat.outcomes)}")
    if seat.exhausted:
        print("note: the seeded members ran out before the phase ended; raise --members")


def check_invariant(url: str) -> None:
    """Not a timing: a benchmark that over-allocated would be measuring a broken service."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            over = connection.execute(
                text(
                    "SELECT count(*) FROM seat_pools p WHERE p.purchased < (SELECT count(*)"
                    " FROM members m WHERE m.agency_id = p.agency_id AND m.seat_type ="
                    " p.seat_type AND m.status IN ('invited', 'active'))"
                )
            ).scalar_one()
    finally:
        engine.dispose()
    print(f"seat pools over-allocated after the run: {over}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="client threads per process")
    parser.add_argument("--processes", type=int, default=2, help="client OS processes (>= 2)")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=8, help="gunicorn threads per worker")
    parser.add_argument("--agencies", type=int, default=20, help="agencies the members spread over")
    parser.add_argument("--seats", type=int, default=25, help="base seats bought per agency")
    parser.add_argument("--members", type=int, default=10_000, help="pending members seeded")
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("BENCH_REDIS_URL", ""),
        help="Redis for the after-commit enqueue (default: a private redis-server on a free "
        "port, or fakeredis over TCP where there is no redis-server)",
    )
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds first")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with contextlib.ExitStack() as stack:
        if not args.redis_url:  # the service needs a Redis; a throwaway one of our own
            args.redis_url = stack.enter_context(throwaway_redis())
        run(args)


def run(args: argparse.Namespace) -> None:
    name, url = create_database()
    server: LiveServer | None = None
    try:
        env = {
            "DATABASE_URL": url,
            "SEATSVC_API_TOKENS": TOKEN,
            "SEATSVC_SECRET_KEY": SECRET_KEY,
            "REDIS_URL": args.redis_url,
        }
        log = Path(tempfile.mkdtemp(prefix="seatsvc-bench-")) / "gunicorn.log"
        server = start_gunicorn(
            "bench.baseline_app:app", env, log,
            workers=args.workers, threads=args.threads, access_log=False,
        )  # fmt: skip
        seed(server, url, args.agencies, args.seats, args.members)
        numbers = list(range(args.members))
        common = (args.processes, args.concurrency)
        if args.warmup > 0:
            run_phase(server, "warmup", *common, args.warmup, None, args.agencies)
        baseline = run_phase(
            server, "GET /bench/baseline", *common, args.duration, None, args.agencies
        )
        seat = run_phase(
            server, "POST seat-request", *common, args.duration, numbers, args.agencies
        )
        print_report([baseline, seat], args)
        check_invariant(url)
    finally:
        if server is not None:
            server.stop()
        drop_database(name)


if __name__ == "__main__":
    main()
