"""`make run`: the whole stack on embedded defaults, for a machine with nothing but Python.

Creates `.env` with fresh random secrets the first time and migrates the
database (SQLite by default). What is not configured runs in this process:
an embedded Redis (fakeredis over TCP), the Stripe emulator (with the Base and
Voice prices) and an SMTP sink keeping mail in `instance/mail/`. Then honcho
runs the Procfile's web, worker, notifier and scheduler against them, sharing
one Prometheus multiprocess directory (`instance/metrics/`).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from dotenv import load_dotenv

from seatsvc.config import Config
from seatsvc.metrics import remove_dead_process_files
from seatsvc.migrate import PROJECT_ROOT, upgrade

ENV_FILE = PROJECT_ROOT / ".env"
EMULATOR_PORT = 12111
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


def start_embedded_redis() -> str:
    from fakeredis import TcpFakeServer

    port = free_port()
    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    threading.Thread(target=server.serve_forever, daemon=True, name="embedded-redis").start()
    return f"redis://127.0.0.1:{port}/0"


def start_stripe_emulator(webhook_url: str, webhook_secret: str | None) -> str:
    """The emulator, with the two prices and (given a secret) our webhook endpoint."""
    from seatsvc.billing.catalog import ensure_prices
    from stripe_emulator import StripeEmulator

    emulator = StripeEmulator()
    port = EMULATOR_PORT if port_is_free("127.0.0.1", EMULATOR_PORT) else 0
    url = emulator.start(port=port)
    if webhook_secret:
        emulator.add_webhook_endpoint(webhook_url, webhook_secret)
    prices = ensure_prices(emulator.client())
    os.environ["STRIPE_PRICE_BASE"], os.environ["STRIPE_PRICE_VOICE"] = (
        prices["base"],
        prices["voice"],
    )
    return url


def start_smtp_sink(smtp_url: str) -> bool:
    """The sink, when SMTP_URL names a free local port; False when something else serves it."""
    parts = urlsplit(smtp_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 25
    if host not in ("127.0.0.1", "localhost") or not port_is_free(host, port):
        return False
    from devtools.smtp_sink import MailSink, start

    start(MailSink(PROJECT_ROOT / "instance" / "mail"), host, port)
    return True


def main() -> None:
    os.chdir(PROJECT_ROOT)
    ensure_env_file()
    load_dotenv(ENV_FILE)
    config = Config.from_env()
    config.validate()
    upgrade(config.database_url)
    parts = [f"database   {config.database_url}"]
    if not config.redis_url:
        os.environ["REDIS_URL"] = start_embedded_redis()
        parts.append(f"redis      {os.environ['REDIS_URL']}  (embedded fakeredis)")
    if not config.stripe_api_key and not config.stripe_api_base:
        webhook_url = f"http://127.0.0.1:{config.port}/webhooks/stripe"
        secret = config.stripe_webhook_secrets[0] if config.stripe_webhook_secrets else None
        os.environ["STRIPE_API_BASE"] = start_stripe_emulator(webhook_url, secret)
        os.environ.setdefault("STRIPE_API_KEY", "sk_test_local")
        parts.append(
            f"stripe     {os.environ['STRIPE_API_BASE']}  (emulator; control API /_emulator/)"
        )
    if start_smtp_sink(config.smtp_url):
        parts.append(f"smtp       {config.smtp_url}  (sink; mail kept in instance/mail/)")
    os.environ.setdefault("HOST", "127.0.0.1")
    # One metrics directory for web and workers, so /metrics also shows the jobs.
    metrics_dir = os.environ.setdefault(
        "PROMETHEUS_MULTIPROC_DIR", str(PROJECT_ROOT / "instance" / "metrics")
    )
    Path(metrics_dir).mkdir(parents=True, exist_ok=True)
    remove_dead_process_files(metrics_dir)
    # The Procfile names `gunicorn`, `python`, `flask`: this virtualenv's.
    os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    base = f"http://{os.environ['HOST']}:{config.port}"
    parts.append(f"api        {base}  (token in .env)")
    if config.ops_password:
        who = f"user {config.ops_username!r}, password: OPS_PASSWORD in .env"
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
        "-p",
        str(config.port),
        *PROCESSES,
    ]
    try:
        raise SystemExit(subprocess.call(command))  # noqa: S603  (our own fixed argv)
    except KeyboardInterrupt:
        raise SystemExit(0) from None


if __name__ == "__main__":
    main()
