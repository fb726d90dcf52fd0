"""The drift rules, as pure functions: adopt a Stripe-side change, let a pending sync win."""

from __future__ import annotations

import pytest

from seatsvc.billing import drift
from seatsvc.billing.drift import DriftAction, InvoiceOutcome, LocalSeats


def test_agreement_is_nothing_to_do() -> None:
    assert drift.decide_seat("base", LocalSeats(3, 3, 2), 3, pending=False).action == "none"


def test_stripe_confirming_what_was_bought_is_recorded_as_billed() -> None:
    decision = drift.decide_seat("base", LocalSeats(3, 2, 2), 3, pending=True)
    assert decision.action == DriftAction.CONFIRM


def test_a_dashboard_change_with_nothing_pending_is_adopted() -> None:
    decision = drift.decide_seat("base", LocalSeats(3, 3, 2), 5, pending=False)
    assert (decision.action, decision.delta, decision.over_capacity) == ("adopt", 2, False)


def test_a_reduction_below_the_members_holding_seats_is_adopted_and_flagged() -> None:
    decision = drift.decide_seat("voice", LocalSeats(4, 4, 3), 1, pending=False)
    assert (decision.action, decision.delta, decision.over_capacity) == ("adopt", -3, True)
    assert not drift.decide_seat("voice", LocalSeats(4, 4, 3), 3, pending=False).over_capacity


def test_a_difference_while_a_local_change_is_pending_lets_the_sync_win() -> None:
    decision = drift.decide_seat("base", LocalSeats(4, 3, 2), 7, pending=True)
    assert decision.action == DriftAction.SYNC
    drifts = drift.decide(
        {"base": LocalSeats(4, 3, 2), "voice": LocalSeats(0, 0, 0)}, {"base": 7}, pending=True
    )
    assert [d.seat_type for d in drifts] == ["base", "voice"]
    assert drifts[0].action == DriftAction.SYNC
    assert drifts[1].action == DriftAction.CONFIRM or drifts[1].action == DriftAction.NONE


def test_a_missing_stripe_item_means_zero_seats() -> None:
    [base] = drift.decide({"base": LocalSeats(2, 2, 0)}, {}, pending=False)
    assert (base.action, base.stripe_quantity, base.delta) == ("adopt", 0, -2)


@pytest.mark.parametrize(
    ("desired", "synced", "status", "pending"),
    [
        (3, 3, "done", False),
        (4, 3, "pending", True),
        (3, 3, "pending", True),
        (3, 2, "failed", True),
    ],
)
def test_pending_means_not_yet_confirmed(
    desired: int, synced: int, status: str, pending: bool
) -> None:
    assert drift.local_change_pending(desired, synced, status) is pending


@pytest.mark.parametrize(
    ("current", "over", "after"),
    [
        (None, True, "over_capacity"),
        ("over_capacity", False, None),
        ("over_capacity", True, "over_capacity"),
        ("payment_failed", True, "payment_failed"),
        ("payment_failed", False, "payment_failed"),
        (None, False, None),
    ],
)
def test_attention_after_seats(current: str | None, over: bool, after: str | None) -> None:
    assert drift.attention_after_seats(current, over) == after


@pytest.mark.parametrize(
    ("event_type", "status", "newer", "outcome"),
    [
        ("invoice.payment_failed", "open", False, InvoiceOutcome.FLAG),
        ("invoice.payment_failed", "paid", False, InvoiceOutcome.STALE),  # paid since
        ("invoice.payment_failed", "open", True, InvoiceOutcome.STALE),  # older than one applied
        ("invoice.paid", "paid", False, InvoiceOutcome.CLEAR),
        ("invoice.paid", "paid", True, InvoiceOutcome.STALE),
    ],
)
def test_invoice_outcomes(event_type: str, status: str, newer: bool, outcome: str) -> None:
    assert drift.decide_invoice(event_type, status, newer) == outcome


def test_invoice_attention() -> None:
    assert drift.attention_after_invoice(None, InvoiceOutcome.FLAG) == "payment_failed"
    assert drift.attention_after_invoice("payment_failed", InvoiceOutcome.CLEAR) is None
    assert drift.attention_after_invoice("over_capacity", InvoiceOutcome.CLEAR) == "over_capacity"
    assert drift.attention_after_invoice("payment_failed", InvoiceOutcome.STALE) == "payment_failed"
