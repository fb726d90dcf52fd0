"""`GET /metrics`: every process's counters plus gauges read at scrape time.

Queue depths and outbox ages are not counted as things happen: they are read
from Redis and the database at scrape time, so they are right however many
processes there are and whatever crashed.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from datetime import datetime

from flask import Blueprint, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rq import Queue
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seatsvc.api.context import runtime
from seatsvc.api.routing import route
from seatsvc.enqueue import BILLING_QUEUE, NOTIFIER_QUEUE, SERIALIZER
from seatsvc.models import BillingOutbox, Notification, utcnow
from seatsvc.runtime import Runtime
from seatsvc.types import NotificationStatus, OutboxStatus

log = logging.getLogger(__name__)
bp = Blueprint("metrics", __name__)


class ScrapeTimeCollector(Collector):
    """Queue depths from Redis and the outbox's oldest pending work from the database."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        rt = runtime()
        yield from _queue_depths(rt)
        yield from _outbox_ages(rt)


def _queue_depths(rt: Runtime) -> Iterator[GaugeMetricFamily]:
    depth = GaugeMetricFamily(
        "seatsvc_queue_jobs",
        "RQ jobs per queue and state (queued, started, scheduled, failed)",
        labels=["queue", "state"],
    )
    connection = rt.redis
    try:
        names = {BILLING_QUEUE, NOTIFIER_QUEUE} | {q.name for q in Queue.all(connection=connection)}
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


def _outbox_ages(rt: Runtime) -> Iterator[GaugeMetricFamily]:
    billing = GaugeMetricFamily(
        "seatsvc_billing_outbox_oldest_pending_seconds",
        "Age of the oldest seat change not yet confirmed by Stripe (0: all in sync)",
    )
    mail = GaugeMetricFamily(
        "seatsvc_notification_oldest_pending_seconds",
        "Age of the oldest notification not yet sent (0: none waiting)",
    )
    try:
        oldest_change, oldest_mail = rt.transaction(_oldest_pending)
    except Exception as error:
        log.warning("metrics: database unreachable (%s)", type(error).__name__)
        return
    now = utcnow()
    billing.add_metric([], _age(now, oldest_change))
    mail.add_metric([], _age(now, oldest_mail))
    yield billing
    yield mail


def _oldest_pending(session: Session) -> tuple[datetime | None, datetime | None]:
    oldest_change = session.scalar(
        select(func.min(BillingOutbox.first_pending_at)).where(
            BillingOutbox.status.in_([OutboxStatus.PENDING, OutboxStatus.FAILED])
        )
    )
    oldest_mail = session.scalar(
        select(func.min(Notification.created_at)).where(
            Notification.status.in_([NotificationStatus.PENDING, NotificationStatus.SENDING])
        )
    )
    return oldest_change, oldest_mail


def _age(now: datetime, then: datetime | None) -> float:
    return max(0.0, (now - then).total_seconds()) if then is not None else 0.0


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
