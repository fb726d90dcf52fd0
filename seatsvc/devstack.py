"""`make run`: the service on embedded defaults, for a machine with nothing but Python.

Creates `.env` with fresh random secrets the first time, migrates the database
(SQLite by default), starts an embedded Redis (fakeredis over TCP) when
`REDIS_URL` is not set, then runs gunicorn as the Procfile's `web` does.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path

from dotenv import load_dotenv

from seatsvc.config import Config
from seatsvc.migrate import PROJECT_ROOT, upgrade

ENV_FILE = PROJECT_ROOT / ".env"


def ensure_env_file(path: Path = ENV_FILE) -> None:
    """Write a local `.env` with random secrets once; never overwrite one."""
    if path.exists():
        return
    template = (PROJECT_ROOT / ".env.example").read_text()
    filled = template.replace(
        "SEATSVC_API_TOKENS=", f"SEATSVC_API_TOKENS=dev-{secrets.token_urlsafe(24)}", 1
    ).replace("SEATSVC_SECRET_KEY=", f"SEATSVC_SECRET_KEY={secrets.token_urlsafe(32)}", 1)
    path.write_text(filled)
    path.chmod(0o600)
    print(f"wrote {path.name} with fresh local secrets")


def start_embedded_redis(port: int) -> str:
    from fakeredis import TcpFakeServer

    server = TcpFakeServer(("127.0.0.1", port), server_type="redis")
    threading.Thread(target=server.serve_forever, daemon=True, name="embedded-redis").start()
    return f"redis://127.0.0.1:{port}/0"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def main() -> None:
    os.chdir(PROJECT_ROOT)
    ensure_env_file()
    load_dotenv(ENV_FILE)
    config = Config.from_env()
    config.validate()
    upgrade(config.database_url)
    if not config.redis_url:
        os.environ["REDIS_URL"] = start_embedded_redis(free_port())
        print(f"embedded Redis (fakeredis) on {os.environ['REDIS_URL']}")
    bind = f"127.0.0.1:{config.port}"
    print(f"seatsvc listening on http://{bind}  (database: {config.database_url})")
    print(f"try: curl -H 'Authorization: Bearer <token from .env>' http://{bind}/readyz")
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "seatsvc.wsgi:app",
        "--bind",
        bind,
        "--workers",
        "2",
        "--access-logfile",
        "-",
    ]
    raise SystemExit(subprocess.call(command))  # noqa: S603  (our own fixed argv)


if __name__ == "__main__":
    main()
