"""The periodic jobs, on rq's own cron: `python -m workers.scheduler` (run exactly one).

Each periodic job is a small sweep that enqueues the real work, so a missed
tick only delays it: the billing sweep re-enqueues outbox rows that did not
reach Stripe (Redis was down at request time, a job was lost), the
notification sweep does the same for emails, and once a day every agency with
pending prorations gets one invoice.

A Redis outage ends rq's cron loop; `workers.supervise` starts it again after a
capped backoff (the same scheduler, so the intervals carry on), so the process
never exits on its own.
"""

from __future__ import annotations

import logging
from typing import Any

from dotenv import load_dotenv
from rq import Queue, cron_job_registry
from rq.cron import CronJob, CronScheduler

from seatsvc.config import Config
from seatsvc.enqueue import (
    BILLING_QUEUE,
    NOTIFIER_QUEUE,
    RECONCILE_JOB_TIMEOUT,
    SERIALIZER,
    build_runtime,
)
from seatsvc.observability import configure_logging, init_sentry
from seatsvc.runtime import Runtime
from workers import billing, context, notifier, reconcile, stripe_events, upgrades
from workers.supervise import Supervisor

log = logging.getLogger(__name__)

DAILY_INVOICE_CRON = "0 6 * * *"  # 06:00 UTC: after the US day's changes, before its business day


class JsonCronJob(CronJob):
    """rq 2.x's CronJob enqueues with the default (pickle) serializer; ours read JSON."""

    def enqueue(self, connection: Any) -> Any:
        assert self.func is not None, "a cron job registered without a function"
        queue = Queue(self.queue_name, connection=connection, serializer=SERIALIZER)
        job = queue.enqueue(self.func, *self.args, **self.kwargs, **self.job_options)
        cron_job_registry.add(self.name, connection)
        log.info("enqueued periodic job %s on %s", self.name, self.queue_name)
        return job


class JsonCronScheduler(CronScheduler):
    stop_requested = False

    def register(self, *args: Any, **kwargs: Any) -> CronJob:
        job = super().register(*args, **kwargs)
        job.__class__ = JsonCronJob
        return job

    def _request_stop(self, signum: Any, frame: Any) -> None:
        # Noted before rq raises StopRequested: its goodbye to Redis may then fail
        # (Redis away, or restarted without us), and a stop must still be a stop.
        self.stop_requested = True
        super()._request_stop(signum, frame)  # type: ignore[no-untyped-call]


def build_scheduler(runtime: Runtime) -> JsonCronScheduler:
    scheduler = JsonCronScheduler(connection=runtime.redis, name="seatsvc-scheduler")
    every = runtime.config.requeue_seconds
    scheduler.register(
        billing.requeue_pending_syncs,
        BILLING_QUEUE,
        interval=every,
        name="billing-requeue",
        result_ttl=600,
    )
    scheduler.register(
        notifier.requeue_due_notifications,
        NOTIFIER_QUEUE,
        interval=every,
        name="notification-requeue",
        result_ttl=600,
    )
    scheduler.register(
        billing.invoice_due,
        BILLING_QUEUE,
        cron=DAILY_INVOICE_CRON,
        name="daily-proration-invoices",
        result_ttl=24 * 3600,
    )
    scheduler.register(
        stripe_events.requeue_unhandled_events,
        BILLING_QUEUE,
        interval=every,
        name="stripe-event-requeue",
        result_ttl=600,
    )
    scheduler.register(
        reconcile.reconcile_all,
        BILLING_QUEUE,
        interval=reconcile.RECONCILE_SECONDS,
        name="stripe-reconcile",
        job_timeout=RECONCILE_JOB_TIMEOUT,
        result_ttl=24 * 3600,
    )
    scheduler.register(
        upgrades.requeue_ready_upgrades,
        BILLING_QUEUE,
        interval=every,
        name="upgrade-requeue",
        result_ttl=600,
    )
    return scheduler


def main() -> None:
    load_dotenv()
    configure_logging()
    config = Config.from_env()
    init_sentry(config.sentry_dsn)
    if not config.redis_url:
        raise SystemExit("REDIS_URL is not set: the scheduler needs the Redis the workers use")
    runtime = build_runtime(config)
    context.install(runtime)
    scheduler = build_scheduler(runtime)

    def once() -> bool:
        try:
            scheduler.start()  # type: ignore[no-untyped-call]
        except Exception:
            if not scheduler.stop_requested:
                raise
        return True  # start() returns only once a stop was asked for

    Supervisor("rq cron scheduler").run(once)


if __name__ == "__main__":
    main()
