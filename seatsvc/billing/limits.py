"""Stripe's per-subscription limits, kept by design. Pure functions of the counters.

Stripe allows at most 200 quantity updates per subscription per hour. We count
updates in fixed one-hour windows and allow half of that in each window: any
sliding hour then overlaps at most two windows, so it can never see more than
200, whatever the load. Invoices: 10 a minute and 20 a day per subscription;
we create at most one a day in `daily` mode and a small daily budget in
`immediate` mode, so that limit is never approached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

STRIPE_QUANTITY_UPDATES_PER_HOUR = 200
UPDATES_PER_WINDOW = STRIPE_QUANTITY_UPDATES_PER_HOUR // 2
WINDOW = timedelta(hours=1)
STRIPE_INVOICES_PER_DAY = 20
IMMEDIATE_INVOICES_PER_DAY = 5


@dataclass(frozen=True)
class UpdateWindow:
    started_at: datetime | None
    updates: int


def window_at(window: UpdateWindow, now: datetime) -> UpdateWindow:
    """The window `now` falls in: the same one, or a fresh one once an hour has passed."""
    if window.started_at is None or now - window.started_at >= WINDOW:
        return UpdateWindow(now, 0)
    return window


def next_update_allowed_at(window: UpdateWindow, now: datetime) -> datetime:
    """When the next quantity update may go to Stripe: now, or when the window rolls over."""
    current = window_at(window, now)
    if current.updates < UPDATES_PER_WINDOW:
        return now
    assert current.started_at is not None
    return current.started_at + WINDOW


def after_update(window: UpdateWindow, now: datetime) -> UpdateWindow:
    current = window_at(window, now)
    return UpdateWindow(current.started_at, current.updates + 1)


@dataclass(frozen=True)
class Debounce:
    """Wait for a quiet moment so a burst of seat changes becomes one Stripe call."""

    quiet: timedelta = timedelta(milliseconds=500)
    max_wait: timedelta = timedelta(seconds=5)

    def wait_seconds(
        self, last_change_at: datetime, first_pending_at: datetime, now: datetime
    ) -> float:
        """0 when it is time to call Stripe; otherwise how long to wait first."""
        if now - first_pending_at >= self.max_wait:
            return 0.0
        remaining = (last_change_at + self.quiet) - now
        return max(0.0, min(remaining, first_pending_at + self.max_wait - now).total_seconds())


def invoice_allowed_now(mode: str, invoices_today: int) -> bool:
    """`immediate` invoices prorations at once while today's budget lasts; else daily."""
    return mode == "immediate" and invoices_today < IMMEDIATE_INVOICES_PER_DAY
