"""Prometheus metrics: the counters code increments, and the multiprocess files.

Counters and histograms are plain `prometheus_client` objects, so any module
can import and increment them (`WEBHOOK_EVENTS.labels(type=..., result=...).inc()`).
Under gunicorn (several worker processes) `PROMETHEUS_MULTIPROC_DIR` makes them
multiprocess-safe (`seatsvc.gunicorn_conf` prepares the directory); the RQ
workers write into the same directory (`workers.run`), so on one host
`GET /metrics` (`seatsvc.api.metrics`) also shows what the jobs did.
"""

from __future__ import annotations

import glob
import logging
import os
from typing import Any

from prometheus_client import Counter, Histogram
from prometheus_client.mmap_dict import MmapedDict as _MmapedDict

log = logging.getLogger(__name__)

SEAT_REQUESTS = Counter(
    "seatsvc_seat_requests",
    "Seat requests (first verified logins) by outcome and reason",
    ["outcome", "reason"],
)
AUTO_ADDS = Counter(
    "seatsvc_auto_adds", "Seats added by Auto-Add (one per auto-added clinician)", ["seat_type"]
)
STRIPE_CALLS = Counter("seatsvc_stripe_calls", "Calls to the Stripe API, by result", ["result"])
STRIPE_ERRORS = Counter(
    "seatsvc_stripe_errors",
    "Stripe calls that failed, by kind (transient: retried; permanent: refused; declined)",
    ["kind"],
)
# Incremented by the webhook handlers: `type` is Stripe's event type, `result` what became
# of it (e.g. stored, duplicate, ignored, processed, failed, bad_signature).
WEBHOOK_EVENTS = Counter(
    "seatsvc_webhook_events", "Stripe webhook events by type and result", ["type", "result"]
)
JOB_DURATION = Histogram(
    "seatsvc_job_duration_seconds",
    "RQ job run time, by queue, function and final status",
    ["queue", "func", "status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
)

MmapedDict: Any = _MmapedDict  # prometheus_client's multiprocess file (untyped)


def count_seat_request(outcome: str, reason: str | None, seat_type: str) -> None:
    """After commit: one seat-request outcome (and the auto-add it made, if any)."""
    SEAT_REQUESTS.labels(outcome=str(outcome), reason=str(reason or "none")).inc()
    if outcome == "auto_added":
        AUTO_ADDS.labels(seat_type=str(seat_type)).inc()


def count_stripe_call(error_kind: str | None) -> None:
    """One Stripe API call; a failed one also by kind (transient, permanent, declined)."""
    if error_kind is None:
        STRIPE_CALLS.labels(result="ok").inc()
        return
    STRIPE_CALLS.labels(result="error").inc()
    STRIPE_ERRORS.labels(kind=error_kind).inc()


def fold_process_files(pid: int, into: str) -> int:
    """Add a finished process's counters and histograms to an archive file, delete its files.

    rq forks a work horse per job; each leaves its own `*_<pid>.db` in the
    multiprocess directory. The worker folds them into `<kind>_<into>.db` (a file no
    live process keeps values of) so the directory does not grow with every job.
    Returns how many files were folded.
    """
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory or pid == os.getpid():
        return 0
    folded = 0
    for path in glob.glob(os.path.join(directory, f"*_{pid}.db")):
        kind = os.path.basename(path).split("_", 1)[0]
        if kind in ("counter", "histogram", "summary"):
            archive = MmapedDict(os.path.join(directory, f"{kind}_{into}.db"))
            try:
                for key, value, timestamp, _pos in MmapedDict.read_all_values_from_file(path):
                    current, _ = archive.read_value(key)
                    archive.write_value(key, current + value, timestamp)
            finally:
                archive.close()
        os.remove(path)  # gauges of a dead process are dropped, as mark_process_dead does
        folded += 1
    return folded


def remove_dead_process_files(directory: str) -> int:
    """Delete the files of processes that no longer run (a previous run's): counted once."""
    removed = 0
    for path in glob.glob(os.path.join(directory, "*.db")):
        owner = os.path.basename(path)[: -len(".db")].rsplit("_", 1)[-1].rsplit("-", 1)[-1]
        if owner.isdigit() and _alive(int(owner)):
            continue
        os.remove(path)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
