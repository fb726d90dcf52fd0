"""Slow clients cannot starve the service (issue #14).

The Procfile's own `web` command (its gunicorn config, worker class and thread
count) serves the app on a loopback port; 50 connections trickle one header line
a second and never finish their request. Meanwhile `/healthz` and authenticated
seat-requests must keep answering, and no worker may be killed for a timeout.
Bounded: 50 sockets, 24 probe rounds, every call with a timeout.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest
import requests

from tests import backends
from tests.conftest import API_TOKEN, SECRET_KEY
from tests.live_server import REPO_ROOT, LiveServer, free_port

pytestmark = pytest.mark.slow

SLOW_CLIENTS = 50
PROBE_ROUNDS = 24
PROBE_EVERY = 0.5
PROBE_TIMEOUT = 5.0  # generous for a loaded CI machine; a starved server never answers
AGENCY = "/v1/agencies/slowpoke"


def procfile_web_command(port: int) -> list[str]:
    """The Procfile's `web` line as honcho would run it (variables expanded)."""
    line = next(
        line.split(":", 1)[1]
        for line in (REPO_ROOT / "Procfile").read_text().splitlines()
        if line.startswith("web:")
    )
    env = {"HOST": "127.0.0.1", "PORT": str(port)}
    expanded = subprocess.run(  # a shell expands ${VAR:-default} exactly as honcho's does
        ["/bin/sh", "-c", f'printf "%s" "{line.strip()}"'],
        env={**env, "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    words = shlex.split(expanded)
    assert words[0] == "gunicorn"
    return [sys.executable, "-m", "gunicorn", *words[1:]]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    directory = tmp_path_factory.mktemp("slow-clients")
    database = backends.TestDatabase.create_sqlite(str(directory))
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database.url,
        "REDIS_URL": backends.service_redis_url(),
        "SEATSVC_API_TOKENS": API_TOKEN,
        "SEATSVC_SECRET_KEY": SECRET_KEY,
        "PROMETHEUS_MULTIPROC_DIR": str(directory / "metrics"),
    }
    env.pop("WEB_CONCURRENCY", None)
    env.pop("WEB_THREADS", None)  # the defaults are what is under test
    log_path = directory / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            procfile_web_command(port), cwd=REPO_ROOT, env=env, stdout=log, stderr=log
        )
    server = LiveServer(f"http://127.0.0.1:{port}", process, log_path)
    deadline = time.monotonic() + 45
    try:
        while True:
            assert process.poll() is None, server.log_tail()
            try:
                if requests.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.2)
        yield server
    finally:
        server.stop()


class Tricklers:
    """Connections that send a request line, then one header line a second, forever."""

    def __init__(self, port: int, count: int) -> None:
        self.sockets = [
            socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(count)
        ]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._trickle, daemon=True)

    def __enter__(self) -> Tricklers:
        for index, sock in enumerate(self.sockets):
            sock.sendall(f"GET /healthz?slow={index} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
        self._thread.start()
        return self

    def _trickle(self) -> None:
        line = 0
        while not self._stop.wait(1.0):
            line += 1
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # the server gave up on this one: fine
                    sock.sendall(f"X-Slow-{line}: {'a' * 10}\r\n".encode())

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_slow_clients_do_not_starve_health_checks_and_seat_requests(web: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    session = requests.Session()
    setup = [
        ("PUT", AGENCY, {"name": "Slowpoke", "admin_emails": ["a@slow.example"]}),
        (
            "POST",
            f"{AGENCY}/members",
            {"member_id": "c1", "email": "c1@slow.example", "source": "auto_join"},
        ),
        ("POST", f"{AGENCY}/members/c1/seat-request", None),
    ]
    for method, path, body in setup:
        reply = session.request(method, web.url + path, json=body, headers=headers, timeout=10)
        assert reply.status_code in (200, 201), reply.text
    port = int(web.url.rsplit(":", 1)[1])
    failures: list[str] = []
    with Tricklers(port, SLOW_CLIENTS):
        time.sleep(1.5)  # every slow connection has reached a worker
        for round_ in range(PROBE_ROUNDS):
            for method, path in (
                ("GET", "/healthz"),
                ("POST", f"{AGENCY}/members/c1/seat-request"),
            ):
                try:
                    reply = requests.request(
                        method, web.url + path, headers=headers, timeout=PROBE_TIMEOUT
                    )
                    if reply.status_code != 200:
                        failures.append(f"round {round_} {path}: {reply.status_code}")
                except requests.RequestException as error:
                    failures.append(f"round {round_} {path}: {type(error).__name__}")
            time.sleep(PROBE_EVERY)
    assert not failures, f"{len(failures)} probes unanswered: {failures[:6]}"
    assert web.process.poll() is None
    assert "WORKER TIMEOUT" not in web.log_text()
