"""Prometheus metrics: the counters code increments, and `GET /metrics`.

Counters and histograms are plain `prometheus_client` objects, so any module
can import and increment them (`WEBHOOK_EVENTS.labels(type=..., result=...).inc()`).
Under gunicorn (several worker processes) `PROMETHEUS_MULTIPROC_DIR` makes them
multiprocess-safe (`seatsvc.gunicorn_conf` prepares the directory); the RQ
workers write into the same directory (`workers.run`), so on one host
`/metrics` also shows what the jobs did.

Queue depths and outbox ages are not counted as things happen: they are read
from Redis and the database at scrape time, so they are right however many
processes there are and whatever crashed.
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.mmap_dict import MmapedDict as _MmapedDict
from prometheus_client.registry import Collector

from seatsvc.api.routing import route

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

bp = Blueprint("metrics", __name__)
MmapedDict: Any = _MmapedDict  # prometheus_client's multiprocess file (untyped)


def count_seat_request(outcome: str, reason: str | None, seat_type: str) -> None:
    """After commit: one seat-request outcome (and the auto-add it made, if any)."""
    SEAT_REQUESTS.labels(outcome=str(outcome), reason=str(reason or "none")).inc()
    if outcome == "auto_added":
        AUTO_ADDS.labels(seat_type=str(seat_type)).inc()


def count_stripe_call(error: BaseException | None) -> None:
    """One Stripe API call; a failed one also by kind (its gateway exception's name)."""
    if error is None:
        STRIPE_CALLS.labels(result="ok").inc()
        return
    kind = {"StripeTransient": "transient", "StripePermanent": "permanent"}.get(
        type(error).__name__, "declined"
    )
    STRIPE_CALLS.labels(result="error").inc()
    STRIPE_ERRORS.labels(kind=kind).inc()


class ScrapeTimeCollector(Collector):
    """Queue depths from Redis and the outbox's oldest pending work from the database."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from seatsvc.api.context import runtime

        rt = runtime()
        yield from _queue_depths(rt)
        yield from _outbox_ages(rt)


def _queue_depths(rt: object) -> Iterator[GaugeMetricFamily]:
    from rq import Queue

    from workers.queues import NOTIFIER_QUEUE, SERIALIZER

    depth = GaugeMetricFamily(
        "seatsvc_queue_jobs",
        "RQ jobs per queue and state (queued, started, scheduled, failed)",
        labels=["queue", "state"],
    )
    connection = rt.redis  # type: ignore[attr-defined]
    try:
        names = {"billing", NOTIFIER_QUEUE} | {q.name for q in Queue.all(connection=connection)}
        for name in sorted(names):
            queue = Queue(name, connection=connection, serializer=SERIALIZER)
            depth.add_metric([name, "queued"], queue.count)
            depth.add_metric([name, "started"], queue.started_job_registry.count)
            depth.add_metric([name, "scheduled"], queue.scheduled_job_registry.count)
            depth.add_metric([name, "failed"], queue.failed_job_registry.count)
        up = 1.0
    except Exception as error:  # Redis down: say so, do not fail the scrape
        log.warning("metrics: Redis unreachable (%s)", type(error).__name__)
        up = 0.0
    yield depth
    yield GaugeMetricFamily("seatsvc_redis_up", "Redis answered this scrape", value=up)


def _outbox_ages(rt: object) -> Iterator[GaugeMetricFamily]:
    from sqlalchemy import func, select

    from seatsvc.models import BillingOutbox, Notification, utcnow
    from seatsvc.types import NotificationStatus, OutboxStatus

    billing = GaugeMetricFamily(
        "seatsvc_billing_outbox_oldest_pending_seconds",
        "Age of the oldest seat change not yet confirmed by Stripe (0: all in sync)",
    )
    mail = GaugeMetricFamily(
        "seatsvc_notification_oldest_pending_seconds",
        "Age of the oldest notification not yet sent (0: none waiting)",
    )
    try:
        with rt.db.session() as session:  # type: ignore[attr-defined]
            oldest_change = session.scalar(
                select(func.min(BillingOutbox.first_pending_at)).where(
                    BillingOutbox.status.in_([OutboxStatus.PENDING, OutboxStatus.FAILED])
                )
            )
            oldest_mail = session.scalar(
                select(func.min(Notification.created_at)).where(
                    Notification.status.in_(
                        [NotificationStatus.PENDING, NotificationStatus.SENDING]
                    )
                )
            )
    except Exception as error:
        log.warning("metrics: database unreachable (%s)", type(error).__name__)
        return
    now = utcnow()
    billing.add_metric([], _age(now, oldest_change))
    mail.add_metric([], _age(now, oldest_mail))
    yield billing
    yield mail


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


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


def exposition() -> bytes:
    """Every process's counters (multiprocess mode) or this one's, plus the scrape-time gauges."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    scrape = CollectorRegistry()
    scrape.register(ScrapeTimeCollector())
    return text + generate_latest(scrape)


@route(bp, "/metrics", "GET", "Prometheus metrics (text exposition format)", auth=False)
def metrics() -> Response:
    return Response(
        exposition(), content_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"}
    )
