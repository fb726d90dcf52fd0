"""Stripe event jobs: handle one stored event, requeue lost ones, re-run stored ones.

The webhook view stores the event and enqueues `process_event` after commit,
one job id per event (`stripe-event-<id>`); the requeue job re-enqueues events
whose enqueue was lost (Redis down). Handlers are idempotent, so a job run
twice, or a re-run by ops, changes nothing the first run did not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import timedelta

from rq import get_current_job

from seatsvc.billing.gateway import StripePermanent
from seatsvc.enqueue import enqueue_event
from seatsvc.models import utcnow
from webhooks import events, handlers
from workers import context

log = logging.getLogger(__name__)

REQUEUE_LIMIT = 1000


def process_event(event_id: str) -> str:
    """The job: handle one stored event (a handled one is skipped)."""
    rt = context.runtime()
    try:
        return handlers.handle_event(rt, context.gateway(rt), event_id)
    except StripePermanent:
        job = get_current_job()
        if job is not None:  # Stripe refused the read itself: retrying cannot help
            job.retries_left = 0
        raise


def requeue_unhandled_events(older_than_seconds: int = 60) -> int:
    """Cron: enqueue events stored but never handled (their enqueue was lost)."""
    rt = context.runtime()
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    event_ids = rt.transaction(lambda s: events.received_before(s, cutoff, REQUEUE_LIMIT))
    for event_id in event_ids:
        enqueue_event(rt.redis, event_id)
    if event_ids:
        log.info("stripe events: %d unhandled event(s) re-enqueued", len(event_ids))
    return len(event_ids)


def reprocess(event_ids: Iterable[str]) -> list[tuple[str, str]]:
    """Run stored events again in this process, oldest first (ops: `flask stripe events`)."""
    rt = context.runtime()
    gateway = context.gateway(rt)
    results = []
    for event_id in event_ids:
        try:
            outcome = handlers.handle_event(rt, gateway, event_id, force=True)
        except Exception as error:  # reported per event; the row says `failed` with why
            outcome = f"failed: {type(error).__name__}: {error}"
        results.append((event_id, outcome))
    return results
