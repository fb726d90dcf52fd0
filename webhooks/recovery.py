"""Events Stripe has that we never received: listed, stored and handed to the workers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session

from seatsvc.billing.gateway import PAGE, StripeGateway
from seatsvc.enqueue import enqueue_event
from seatsvc.models import utcnow
from seatsvc.runtime import Runtime
from seatsvc.types import StripeEventStatus
from webhooks import events
from webhooks.handlers import HANDLED_TYPES

# Events are recovered from a little before the newest stored one: Stripe's `created`
# has one-second resolution, and deliveries arrive out of order.
EVENT_OVERLAP = timedelta(minutes=10)
# With nothing stored yet, look back as far as Stripe retries a delivery.
EVENT_LOOKBACK = timedelta(days=3)


def recover_missed_events(rt: Runtime, gateway: StripeGateway) -> int:
    """Store and enqueue the events Stripe has that we never received; returns how many."""
    newest = rt.transaction(events.latest_created)
    floor = utcnow() - EVENT_LOOKBACK
    since = max(newest - EVENT_OVERLAP, floor) if newest is not None else floor
    page: list[dict[str, Any]] = []
    recovered = 0
    for event in gateway.events_since(int(since.timestamp()), sorted(HANDLED_TYPES)):
        page.append(event)
        if len(page) >= PAGE:
            recovered += _store_missing(rt, page)
            page = []
    recovered += _store_missing(rt, page)
    return recovered


def _store_missing(rt: Runtime, listed: list[dict[str, Any]]) -> int:
    if not listed:
        return 0

    def work(session: Session) -> list[str]:
        known = events.stored_ids(session, (event["id"] for event in listed))
        return [
            event["id"]
            for event in listed
            if event["id"] not in known
            and events.insert_event(session, event, StripeEventStatus.RECEIVED)
        ]

    new_ids = set(rt.transaction(work))
    for event in reversed(listed):  # the list is newest first: enqueue the oldest first
        if event["id"] in new_ids:
            enqueue_event(rt.redis, event["id"])
    return len(new_ids)
