"""A real gunicorn serving seatsvc, and HTTP clients firing bursts from several OS processes.

Shared by tests/test_concurrency.py and bench/seat_request.py. The burst starts
every request at (nearly) the same instant: each client process readies one
thread per request, all processes meet at a multiprocessing barrier, then all
threads are released together.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

REPO_ROOT = Path(__file__).resolve().parents[1]
# gunicorn's access-log atoms: %(p)s is the serving worker's pid, as "<1234>".
ACCESS_LOG_FORMAT = "ACCESS pid=%(p)s status=%(s)s %(m)s %(U)s"
_ACCESS_LINE = re.compile(r"^ACCESS pid=<(\d+)> status=(\d+) (\S+) (\S+)", re.MULTILINE)
REQUEST_TIMEOUT = 60.0


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class LiveServer:
    """One gunicorn master and its workers, logging to a file."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def log_size(self) -> int:
        return self.log_path.stat().st_size

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def access_since(self, offset: int) -> list[tuple[int, int, str, str]]:
        """(worker pid, status, method, path) of every request logged after `offset`."""
        with self.log_path.open("rb") as log:
            log.seek(offset)
            text = log.read().decode(errors="replace")
        return [
            (int(pid), int(status), method, path)
            for pid, status, method, path in _ACCESS_LINE.findall(text)
        ]

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if the workers do not leave in time."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_gunicorn(
    app_spec: str,
    env: Mapping[str, str],
    log_path: Path,
    *,
    workers: int = 3,
    threads: int = 8,
    boot_timeout: float = 45.0,
    access_log: bool = True,
) -> LiveServer:
    """Start `python -m gunicorn app_spec` on a free port and wait for /healthz."""
    port = free_port()
    command = [
        sys.executable, "-m", "gunicorn", app_spec,
        "--workers", str(workers),
        "--threads", str(threads),
        "--bind", f"127.0.0.1:{port}",
        "--graceful-timeout", "5",
    ]  # fmt: skip
    if access_log:
        command += ["--access-logfile", "-", "--access-logformat", ACCESS_LOG_FORMAT]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        _wait_until_ready(server, workers, boot_timeout)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_until_ready(server: LiveServer, workers: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited at start:\n{server.log_tail()}")
        try:
            healthy = requests.get(f"{server.url}/healthz", timeout=2).status_code == 200
        except requests.RequestException:
            healthy = False
        # Every worker must have booted, or the first burst lands on fewer processes.
        if healthy and server.log_text().count("Booting worker") >= workers:
            return
        time.sleep(0.1)
    raise RuntimeError(f"gunicorn not ready after {timeout:.0f}s:\n{server.log_tail()}")


# --- clients ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    body: Any = None


@dataclass(frozen=True)
class Reply:
    call: Call
    status: int  # -1: no HTTP answer at all (connection error, timeout)
    body: Any
    seconds: float
    client_pid: int


def send(base_url: str, token: str, call: Call, session: requests.Session | None = None) -> Reply:
    """One request as the main product sends it; never raises."""
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    try:
        response = (session or requests).request(
            call.method, base_url + call.path, json=call.body, headers=headers,
            timeout=REQUEST_TIMEOUT,
        )  # fmt: skip
    except requests.RequestException as error:
        return Reply(call, -1, repr(error), time.perf_counter() - started, os.getpid())
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return Reply(call, response.status_code, body, time.perf_counter() - started, os.getpid())


def in_threads(base_url: str, token: str, calls: Sequence[Call], threads: int = 8) -> list[Reply]:
    """Calls from this process's thread pool, answers in call order (used for setup)."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(lambda call: send(base_url, token, call), calls))


def burst(base_url: str, token: str, calls: Sequence[Call], processes: int = 2) -> list[Reply]:
    """Fire every call at once: `processes` client OS processes, one thread per call.

    Answers come back in call order.
    """
    if processes < 1:
        raise ValueError("at least one client process")
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(processes)
    results = context.Queue()
    shares = [list(range(index, len(calls), processes)) for index in range(processes)]
    workers = [
        context.Process(
            target=_client_process,
            args=(base_url, token, [calls[i] for i in share], share, barrier, results),
            daemon=True,
        )
        for share in shares
    ]
    for worker in workers:
        worker.start()
    replies: list[Reply | None] = [None] * len(calls)
    try:
        for _ in workers:
            for index, reply in results.get(timeout=REQUEST_TIMEOUT * 2 + 30):
                replies[index] = reply
    finally:
        for worker in workers:
            worker.join(timeout=10)
            if worker.is_alive():
                worker.kill()
    missing = [index for index, reply in enumerate(replies) if reply is None]
    if missing:
        raise RuntimeError(f"no answer recorded for calls {missing}")
    return [reply for reply in replies if reply is not None]


def _client_process(
    base_url: str,
    token: str,
    calls: list[Call],
    indexes: list[int],
    barrier: Any,
    results: Any,
) -> None:
    """One client OS process: a thread per call, released together with the other processes."""
    go = threading.Barrier(len(calls) + 1)

    def fire(call: Call) -> Reply:
        go.wait(timeout=REQUEST_TIMEOUT)
        return send(base_url, token, call)

    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        futures = [pool.submit(fire, call) for call in calls]
        barrier.wait(timeout=REQUEST_TIMEOUT)
        if calls:
            go.wait(timeout=REQUEST_TIMEOUT)
        replies = [future.result() for future in futures]
    results.put(list(zip(indexes, replies, strict=True)))
