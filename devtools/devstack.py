"""`make run`: the whole stack on embedded defaults, for a machine with nothing but Python.

Creates `.env` with fresh random secrets the first time and migrates the
database (SQLite by default). What is not configured runs in this process:
an embedded Redis (fakeredis over TCP), the Stripe emulator (with the Base and
Voice prices; its objects kept in `instance/stripe-emulator.json` so a restart
finds the subscriptions the database knows) and an SMTP sink keeping mail in
`instance/mail/`. Then honcho runs the Procfile's web, worker, notifier and
scheduler against them, sharing one Prometheus multiprocess directory
(`instance/metrics/`).

Ctrl-C or SIGTERM stops honcho's processes first (honcho: SIGTERM, SIGKILL after
5 s), then the embedded servers, and exits: their threads are daemons, so no
connection left open can keep this process alive.

`DEVSTACK_ENV_FILE`, `SEATSVC_INSTANCE_DIR` and `DEVSTACK_EMULATOR_PORT` move the
`.env` file, the `instance/` directory and the emulator's port (tests use them).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from urllib.parse import urlsplit

from dotenv import load_dotenv

from seatsvc.config import Config
from seatsvc.metrics import remove_dead_process_files
from seatsvc.migrate import PROJECT_ROOT, upgrade

ENV_FILE = Path(os.environ.get("DEVSTACK_ENV_FILE") or PROJECT_ROOT / ".env")
INSTANCE_DIR = Path(os.environ.get("SEATSVC_INSTANCE_DIR") or PROJECT_ROOT / "instance")
EMULATOR_PORT = int(os.environ.get("DEVSTACK_EMULATOR_PORT") or 12111)
PROCESSES = ("web", "worker", "notifier", "scheduler")


def ensure_env_file(path: Path = ENV_FILE) -> None:
    """Write a local `.env` with random secrets once; never overwrite one."""
    if path.exists():
        return
    template = (PROJECT_ROOT / ".env.example").read_text()
    filled = template.replace(
        "SEATSVC_API_TOKENS=", f"SEATSVC_API_TOKENS=dev-{secrets.token_urlsafe(24)}", 1
    ).replace("SEATSVC_SECRET_KEY=", f"SEATSVC_SECRET_KEY={secrets.token_urlsafe(32)}", 1)
    filled = filled.replace("\nOPS_PASSWORD=\n", f"\nOPS_PASSWORD={secrets.token_urlsafe(16)}\n", 1)
    # The local Stripe emulator signs its webhooks with this; real Stripe gives its own.
    filled = filled.replace(
        "\nSTRIPE_WEBHOOK_SECRET=\n", f"\nSTRIPE_WEBHOOK_SECRET=whsec_{secrets.token_hex(24)}\n", 1
    )
    path.write_text(filled)
    path.chmod(0o600)
    print(f"wrote {path.name} with fresh local secrets")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def port_is_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def start_embedded_redis(stops: contextlib.ExitStack) -> str:
    # Lazy: fakeredis is needed only when no Redis is configured.
    from fakeredis import TcpFakeServer  # noqa: PLC0415

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    # A connection's thread blocks in BLPOP for as long as a worker waits: non-daemon
    # (fakeredis' choice), they kept this process alive minutes after Ctrl-C.
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True, name="embedded-redis").start()
    stops.callback(server.server_close)
    stops.callback(server.shutdown)
    return f"redis://127.0.0.1:{port}/0"


def start_stripe_emulator(
    webhook_url: str, webhook_secret: str | None, stops: contextlib.ExitStack
) -> str:
    """The emulator, with the two prices and (given a secret) our webhook endpoint.

    Its objects persist in the instance directory: the database of the last run
    names customers and subscriptions the emulator must still have.
    """
    # Lazy: the emulator runs only when no Stripe key is configured.
    from seatsvc.billing.catalog import ensure_prices  # noqa: PLC0415
    from stripe_emulator import StripeEmulator  # noqa: PLC0415
    from stripe_emulator.persist import persist  # noqa: PLC0415

    emulator = StripeEmulator()
    saver = persist(emulator, INSTANCE_DIR / "stripe-emulator.json")
    stops.callback(saver.stop)  # runs after emulator.stop: the last state is saved
    port = EMULATOR_PORT if port_is_free("127.0.0.1", EMULATOR_PORT) else 0
    url = emulator.start(port=port)
    stops.callback(emulator.stop)
    if webhook_secret:
        emulator.add_webhook_endpoint(webhook_url, webhook_secret)
    prices = ensure_prices(emulator.client())
    os.environ["STRIPE_PRICE_BASE"], os.environ["STRIPE_PRICE_VOICE"] = (
        prices["base"],
        prices["voice"],
    )
    return url


def start_smtp_sink(smtp_url: str, stops: contextlib.ExitStack) -> bool:
    """The sink, when SMTP_URL names a free local port; False when something else serves it."""
    parts = urlsplit(smtp_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 25
    if host not in ("127.0.0.1", "localhost") or not port_is_free(host, port):
        return False
    # Lazy: aiosmtpd is loaded only when the sink is started.
    from devtools.smtp_sink import MailSink, start  # noqa: PLC0415

    controller = start(MailSink(INSTANCE_DIR / "mail"), host, port)
    stops.callback(controller.stop)
    return True


def run_honcho(command: list[str]) -> int:
    """Run honcho until it ends; SIGINT/SIGTERM here make it stop its processes.

    Ctrl-C reaches honcho too (same process group); a SIGTERM sent to this
    process alone used to leave honcho and its processes running, orphaned.
    """
    honcho = subprocess.Popen(command)  # noqa: S603  (our own fixed argv)

    def forward(signum: int, frame: FrameType | None) -> None:
        if honcho.poll() is None:
            honcho.send_signal(signal.SIGTERM)

    previous: dict[int, Callable[..., object] | int | None] = {
        signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        return honcho.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main() -> None:
    try:
        code = serve()
    except KeyboardInterrupt:  # Ctrl-C before honcho started: no traceback
        code = 130
    raise SystemExit(code)


def serve() -> int:
    os.chdir(PROJECT_ROOT)
    ensure_env_file()
    load_dotenv(ENV_FILE)
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    os.environ["DATABASE_URL"] = os.environ.get("DATABASE_URL") or (
        f"sqlite:///{INSTANCE_DIR / 'seatsvc.sqlite3'}"
    )
    config = Config.from_env()
    config.validate()
    upgrade(config.database_url)
    with contextlib.ExitStack() as stops:  # the embedded servers stop after honcho's processes
        return run_stack(config, stops)


def run_stack(config: Config, stops: contextlib.ExitStack) -> int:
    parts = [f"database   {config.database_url}"]
    if not config.redis_url:
        os.environ["REDIS_URL"] = start_embedded_redis(stops)
        parts.append(f"redis      {os.environ['REDIS_URL']}  (embedded fakeredis)")
    if not config.stripe_api_key and not config.stripe_api_base:
        webhook_url = f"http://127.0.0.1:{config.port}/webhooks/stripe"
        secret = config.stripe_webhook_secrets[0] if config.stripe_webhook_secrets else None
        os.environ["STRIPE_API_BASE"] = start_stripe_emulator(webhook_url, secret, stops)
        os.environ.setdefault("STRIPE_API_KEY", "sk_test_local")
        parts.append(
            f"stripe     {os.environ['STRIPE_API_BASE']}  (emulator; control API /_emulator/)"
        )
    if start_smtp_sink(config.smtp_url, stops):
        parts.append(f"smtp       {config.smtp_url}  (sink; mail kept in {INSTANCE_DIR}/mail/)")
    os.environ.setdefault("HOST", "127.0.0.1")
    # One metrics directory for web and workers, so /metrics also shows the jobs.
    metrics_dir = os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(INSTANCE_DIR / "metrics"))
    Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    remove_dead_process_files(metrics_dir)
    # The Procfile names `gunicorn`, `python`, `flask`: this virtualenv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    base = f"http://{os.environ['HOST']}:{config.port}"
    parts.append(f"api        {base}  (token in {ENV_FILE.name})")
    if config.ops_password:
        who = f"user {config.ops_username!r}, password: OPS_PASSWORD in {ENV_FILE.name}"
        parts.append(f"dashboard  {base}/ops/rq  ({who})")
    else:
        parts.append("dashboard  off: set OPS_PASSWORD in .env to open /ops/rq")
    parts.append(f"metrics    {base}/metrics  (health: {base}/healthz, {base}/readyz)")
    print("seatsvc local stack:\n  " + "\n  ".join(parts), flush=True)
    command = [
        sys.executable,
        "-m",
        "honcho",
        "-f",
        "Procfile",
        "start",
        # The environment is already complete (ENV_FILE loaded, test overrides kept):
        # honcho must not read ./.env again over it.
        "-e",
        os.devnull,
        "-p",
        str(config.port),
        *PROCESSES,
    ]
    return run_honcho(command)


if __name__ == "__main__":
    main()
