"""`make run` (devtools/devstack.py) stops cleanly: Ctrl-C or SIGTERM end every process
and free every port within 5 s, without a traceback.

The stack runs against a temporary `.env`, instance directory, database and ports
(`DEVSTACK_ENV_FILE`, `SEATSVC_INSTANCE_DIR`, ...): the developer's own are never touched.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.live_server import REPO_ROOT, free_port

pytestmark = pytest.mark.slow

STOP_WITHIN = 5.0
BOOT_WITHIN = 120.0
# What the stack must not inherit from the environment running the tests.
CLEARED = (
    "DATABASE_URL", "REDIS_URL", "STRIPE_API_KEY", "STRIPE_API_BASE", "STRIPE_WEBHOOK_SECRET",
    "STRIPE_PRICE_BASE", "STRIPE_PRICE_VOICE", "SMTP_URL", "PORT", "HOST", "SENTRY_DSN",
    "OPS_PASSWORD", "PROMETHEUS_MULTIPROC_DIR", "SEATSVC_API_TOKENS", "SEATSVC_SECRET_KEY",
)  # fmt: skip


@dataclass
class Stack:
    launcher: subprocess.Popen[bytes]
    out: Path
    err: Path
    ports: list[int]
    tree: set[int]

    def output(self) -> str:
        return self.out.read_text(errors="replace") + self.err.read_text(errors="replace")


def children() -> dict[int, int]:
    """pid -> parent pid of every process on this machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return found


def descendants(root: int) -> set[int]:
    parents = children()
    found, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.add(pid)
                frontier.append(pid)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    web, smtp, emulator = free_port(), free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in CLEARED}
    env.update(
        DEVSTACK_ENV_FILE=str(tmp_path / ".env"),
        SEATSVC_INSTANCE_DIR=str(tmp_path / "instance"),
        DEVSTACK_EMULATOR_PORT=str(emulator),
        PORT=str(web),
        SMTP_URL=f"smtp://127.0.0.1:{smtp}",
        WEB_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
    )
    out, err = tmp_path / "stdout.log", tmp_path / "stderr.log"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "devtools.devstack"],
            cwd=REPO_ROOT,
            env=env,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,  # its own process group, as a terminal gives `make run`
        )
    started = Stack(launcher, out, err, [web, smtp, emulator], {launcher.pid})
    try:
        deadline = time.monotonic() + BOOT_WITHIN
        while True:
            assert launcher.poll() is None, started.output()[-3000:]
            try:
                if requests.get(f"http://127.0.0.1:{web}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, started.output()[-3000:]
            time.sleep(0.5)
        redis_port = re.search(r"redis +redis://127\.0\.0\.1:(\d+)/0", started.output())
        assert redis_port, started.output()
        started.ports.append(int(redis_port.group(1)))
        time.sleep(2)  # let the workers settle into their blocking reads (BLPOP)
        started.tree = descendants(launcher.pid)
        assert not (REPO_ROOT / ".env").exists() or (tmp_path / ".env").exists()
        yield started
    finally:
        # Only what this test started (orphans too: they were recorded while still children).
        for pid in (started.tree | descendants(launcher.pid)) - {launcher.pid}:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if launcher.poll() is None:
            launcher.kill()
        launcher.wait(timeout=10)


def stop_and_check(stack: Stack, send: str) -> None:
    tree = stack.tree
    assert len(tree) >= 6, "launcher, honcho and the four processes"
    if send == "SIGINT":
        os.killpg(stack.launcher.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
    else:
        stack.launcher.send_signal(signal.SIGTERM)  # `kill <pid>`: the launcher alone
    deadline = time.monotonic() + STOP_WITHIN
    while time.monotonic() < deadline:
        left = [pid for pid in tree if alive(pid)]
        open_ports = [port for port in stack.ports if listening(port)]
        if stack.launcher.poll() is not None and not left and not open_ports:
            break
        time.sleep(0.1)
    left = [pid for pid in tree if alive(pid)]
    open_ports = [port for port in stack.ports if listening(port)]
    assert stack.launcher.poll() is not None, f"launcher alive {STOP_WITHIN}s after {send}"
    assert not left, f"processes alive {STOP_WITHIN}s after {send}: {left}"
    assert not open_ports, f"ports still open after {send}: {open_ports}"
    output = stack.output()
    assert "Traceback" not in output, output[-4000:]
    # The emulator's objects (the two prices at least) wait for the next `make run`.
    snapshot = json.loads((stack.out.parent / "instance" / "stripe-emulator.json").read_text())
    assert {o["lookup_key"] for o in snapshot["objects"] if o["object"] == "price"} == {
        "seatsvc_base",
        "seatsvc_voice",
    }


def test_ctrl_c_stops_everything_quietly(stack: Stack) -> None:
    stop_and_check(stack, "SIGINT")


def test_sigterm_stops_everything_quietly(stack: Stack) -> None:
    stop_and_check(stack, "SIGTERM")
