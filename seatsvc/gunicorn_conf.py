"""gunicorn settings for the Procfile's `web` (`-c python:seatsvc.gunicorn_conf`).

- Prometheus multiprocess mode: every gunicorn worker writes its counters to
  files in `PROMETHEUS_MULTIPROC_DIR` and `/metrics` adds them up. Files left by
  processes of an earlier run are removed at start (they would be counted
  again); when the variable is unset a fresh temporary directory is used. A
  worker that exits has its live gauges dropped (`child_exit`).
- Logs: gunicorn's own (errors, access) as JSON lines like the app's. The access
  line never names the basic-auth user (`%(u)s`: the ops dashboard's login).
- Request limits, set here on purpose (gunicorn's defaults, made explicit): past
  them gunicorn itself answers 400/414/431 with a small HTML page before the app
  runs, so the proxy in front should enforce the same limits (README, "Configuration").
- Workers: `gthread`, `WEB_THREADS` threads each (default 32). A sync worker
  belongs to one connection from its first byte to its answer, so six clients
  sending their headers slowly held all four and health checks went unanswered.
  A gthread worker's main loop keeps accepting and heart-beating while its
  threads serve; a connection that sends nothing goes back to the poller after
  5 s (gunicorn 27) instead of holding a thread, and one that trickles its headers holds one
  thread, not the worker. Threads, not processes, absorb slow clients: keep
  `WEB_THREADS` well above the slow connections a process may see at once.
  In production put a buffering reverse proxy (nginx) in front: it reads whole
  requests before passing them on, which is the real protection (README).

Command-line flags (bind, workers, access log) still apply on top of this file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="seatsvc-metrics-")
# Set before anything imports prometheus_client (it picks its mode at import time),
# so seatsvc is imported only below, and the workers fork with it set.
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _DIR


def _logconfig() -> dict[str, Any]:
    # Lazy: seatsvc (and prometheus_client) only after PROMETHEUS_MULTIPROC_DIR is set.
    from seatsvc.observability import gunicorn_logconfig  # noqa: PLC0415

    return gunicorn_logconfig()


logconfig_dict = _logconfig()
# gunicorn's default format without `%(u)s` (the user of a basic-auth header).
access_log_format = '%(h)s %(l)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms'

limit_request_line = 4094  # bytes of "METHOD /path?query HTTP/1.1"; ids are <= 64 chars
# A trickled request cannot grow without end: at most this many header lines.
limit_request_fields = 50
limit_request_field_size = 8190

worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "32"))
# A process accepts no more connections than its threads can serve at once: one whose
# threads are all held by slow clients stops accepting, and the others answer instead
# (gunicorn's default, 1000, let one process queue fast requests behind slow ones).
worker_connections = threads
# Seconds without a heartbeat before the master restarts a worker; a gthread
# worker beats from its main loop, so only a wedged process trips it.
timeout = 30
graceful_timeout = 20  # a deploy waits this long for requests in flight
# No keep-alive: a kept connection would count against `worker_connections` with no thread
# serving it. Each response closes its connection (the proxy in front keeps the clients').
keepalive = 0


def on_starting(server: Any) -> None:
    """In the master, before any worker: no files of earlier runs in the metrics directory.

    Files of live processes stay: the RQ workers may share the directory (`make run`).
    """
    from seatsvc.metrics import remove_dead_process_files  # noqa: PLC0415  # gunicorn hook

    Path(_DIR).mkdir(parents=True, exist_ok=True)
    remove_dead_process_files(_DIR)


def child_exit(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess  # noqa: PLC0415  # gunicorn hook

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    if _DIR.startswith(tempfile.gettempdir()) and Path(_DIR).name.startswith("seatsvc-metrics-"):
        shutil.rmtree(_DIR, ignore_errors=True)
