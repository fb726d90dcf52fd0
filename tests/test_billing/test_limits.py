"""Stripe's per-subscription limits (seatsvc/billing/limits.py), as pure rules.

The property: a worker that sends an update whenever `next_update_allowed_at`
says it may, and counts it with `after_update`, never sends more than 200
quantity updates in any sliding hour, however the updates are spread.
"""

from __future__ import annotations

from bisect import bisect_left
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from seatsvc.billing.limits import (
    IMMEDIATE_INVOICES_PER_DAY,
    STRIPE_INVOICES_PER_DAY,
    STRIPE_QUANTITY_UPDATES_PER_HOUR,
    UPDATES_PER_WINDOW,
    WINDOW,
    Debounce,
    UpdateWindow,
    after_update,
    invoice_allowed_now,
    next_update_allowed_at,
    window_at,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def max_in_any_hour(times: list[datetime]) -> int:
    """The most updates any sliding one-hour interval [t, t + 1h) holds."""
    times = sorted(times)
    return max(
        (bisect_left(times, start + WINDOW) - index for index, start in enumerate(times)),
        default=0,
    )


def drive(wanted_at: list[datetime]) -> list[datetime]:
    """Send one update per wish, each as soon as the budget allows (as the worker does)."""
    window = UpdateWindow(None, 0)
    sent: list[datetime] = []
    clock = T0
    for wish in sorted(wanted_at):
        clock = max(clock, wish)
        clock = max(clock, next_update_allowed_at(window, clock))
        assert next_update_allowed_at(window, clock) == clock
        window = after_update(window, clock)
        sent.append(clock)
    return sent


def test_the_counter_checker_sees_a_sliding_hour() -> None:
    burst = [T0 + timedelta(minutes=59, seconds=i) for i in range(150)]
    burst += [T0 + timedelta(hours=1, seconds=i) for i in range(150)]
    assert max_in_any_hour(burst) == 300  # the checker itself can fail
    assert max_in_any_hour([T0, T0 + WINDOW]) == 1


def test_a_window_allows_half_of_stripes_hourly_limit() -> None:
    assert UPDATES_PER_WINDOW * 2 <= STRIPE_QUANTITY_UPDATES_PER_HOUR
    window = UpdateWindow(None, 0)
    for second in range(UPDATES_PER_WINDOW):
        now = T0 + timedelta(seconds=second)
        assert next_update_allowed_at(window, now) == now
        window = after_update(window, now)
    assert window == UpdateWindow(T0, UPDATES_PER_WINDOW)
    later = T0 + timedelta(minutes=10)
    assert next_update_allowed_at(window, later) == T0 + WINDOW
    # The window rolls over exactly an hour after it opened.
    assert window_at(window, T0 + WINDOW) == UpdateWindow(T0 + WINDOW, 0)
    assert next_update_allowed_at(window, T0 + WINDOW) == T0 + WINDOW


def test_the_worst_case_burst_at_a_window_edge_stays_within_200() -> None:
    wishes = [T0 + timedelta(minutes=59, seconds=59)] * 300 + [T0 + WINDOW] * 300
    sent = drive([T0, *wishes])
    assert max_in_any_hour(sent) <= STRIPE_QUANTITY_UPDATES_PER_HOUR
    assert len(sent) == 601  # nothing dropped, only delayed


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.integers(min_value=0, max_value=4 * 3600),  # seconds after T0
        min_size=1,
        max_size=700,
    )
)
def test_no_sliding_hour_ever_sees_more_than_200_updates(offsets: list[int]) -> None:
    sent = drive([T0 + timedelta(seconds=offset) for offset in offsets])
    assert len(sent) == len(offsets)
    assert max_in_any_hour(sent) <= STRIPE_QUANTITY_UPDATES_PER_HOUR
    assert sent == sorted(sent)


def test_debounce_waits_for_a_quiet_moment_but_never_past_max_wait() -> None:
    debounce = Debounce(quiet=timedelta(milliseconds=500), max_wait=timedelta(seconds=5))
    first = T0
    # A change just now: wait out the quiet period.
    assert debounce.wait_seconds(T0, first, T0) == 0.5
    assert debounce.wait_seconds(T0, first, T0 + timedelta(milliseconds=200)) == 0.3
    assert debounce.wait_seconds(T0, first, T0 + timedelta(milliseconds=500)) == 0.0
    # Changes keep arriving: the wait is cut at max_wait after the first pending change.
    last = T0 + timedelta(seconds=4, milliseconds=900)
    assert debounce.wait_seconds(last, first, last) == 0.1
    assert debounce.wait_seconds(last, first, T0 + timedelta(seconds=5)) == 0.0


def test_invoices_stay_far_below_stripes_daily_limit() -> None:
    assert IMMEDIATE_INVOICES_PER_DAY < STRIPE_INVOICES_PER_DAY
    assert invoice_allowed_now("immediate", 0)
    assert invoice_allowed_now("immediate", IMMEDIATE_INVOICES_PER_DAY - 1)
    assert not invoice_allowed_now("immediate", IMMEDIATE_INVOICES_PER_DAY)
    assert not invoice_allowed_now("daily", 0)
