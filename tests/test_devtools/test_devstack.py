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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def launch(home: Path, web: int, smtp: int, emulator: int) -> Stack:
    """`python -m devtools.devstack` with its files in `home`; back once /healthz answers."""
    env = {key: value for key, value in os.environ.items() if key not in CLEARED}
    env.update(
        DEVSTACK_ENV_FILE=str(home / ".env"),
        SEATSVC_INSTANCE_DIR=str(home / "instance"),
        DEVSTACK_EMULATOR_PORT=str(emulator),
        PORT=str(web),
        SMTP_URL=f"smtp://127.0.0.1:{smtp}",
        WEB_CONCURRENCY="2",
        PYTHONUNBUFFERED="1",
    )
    run = len(list(home.glob("stdout-*.log")))
    out, err = home / f"stdout-{run}.log", home / f"stderr-{run}.log"
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
    except BaseException:
        clean_up(started)
        raise
    return started


def clean_up(stack: Stack) -> None:
    """Kill whatever this test started and is still there (orphans too: recorded at boot)."""
    for pid in (stack.tree | descendants(stack.launcher.pid)) - {stack.launcher.pid}:
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
    if stack.launcher.poll() is None:
        stack.launcher.kill()
    stack.launcher.wait(timeout=10)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    started = launch(tmp_path, free_port(), free_port(), free_port())
    try:
        yield started
    finally:
        clean_up(started)


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


def assert_emulator_state_kept(stack: Stack) -> None:
    """The emulator's objects (the two prices at least) wait for the next `make run`."""
    snapshot = json.loads((stack.out.parent / "instance" / "stripe-emulator.json").read_text())
    assert {o["lookup_key"] for o in snapshot["objects"] if o["object"] == "price"} == {
        "seatsvc_base",
        "seatsvc_voice",
    }


def test_ctrl_c_stops_everything_quietly(stack: Stack) -> None:
    stop_and_check(stack, "SIGINT")
    assert_emulator_state_kept(stack)


def test_sigterm_stops_everything_quietly(stack: Stack) -> None:
    stop_and_check(stack, "SIGTERM")
    assert_emulator_state_kept(stack)


def test_a_restart_carries_on_with_the_agencies_of_the_last_run(tmp_path: Path) -> None:
    """The database keeps the agency and its subscription id; the emulator must too."""
    ports = (free_port(), free_port(), free_port())
    agency = f"http://127.0.0.1:{ports[0]}/v1/agencies/restart"

    def token() -> dict[str, str]:
        line = next(
            line
            for line in (tmp_path / ".env").read_text().splitlines()
            if line.startswith("SEATSVC_API_TOKENS=")
        )
        return {"Authorization": f"Bearer {line.split('=', 1)[1].split(',')[0]}"}

    def base_seats_when(done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + 30
        while True:
            seats: dict[str, Any] = requests.get(agency, headers=token(), timeout=5).json()
            if done(seats) or time.monotonic() > deadline:
                return seats
            time.sleep(0.5)

    first = launch(tmp_path, *ports)
    try:
        body = {"name": "Restart", "admin_emails": ["a@restart.example"], "trial": False}
        assert requests.put(agency, json=body, headers=token(), timeout=10).status_code in (
            200,
            201,
        )
        assert requests.post(f"{agency}/baa", json={}, headers=token(), timeout=10).ok
        shown = base_seats_when(lambda a: a["seats"]["base"]["sync"] == "in_sync")
        assert shown["stripe_subscription_id"], shown
        stop_and_check(first, "SIGTERM")
    finally:
        clean_up(first)
    second = launch(tmp_path, *ports)
    try:
        changed = requests.put(
            f"{agency}/seats/base", json={"quantity": 3}, headers=token(), timeout=10
        )
        assert changed.status_code == 200, changed.text
        shown = base_seats_when(lambda a: a["seats"]["base"]["billed"] == 3)
        assert shown["seats"]["base"]["billed"] == 3, shown
        assert shown["seats"]["base"]["sync"] == "in_sync", shown
    finally:
        clean_up(second)
