"""The upgrade's pure rules (seatsvc.billing.upgrade_rules) and the trial's block reason."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seatsvc.billing.upgrade_rules import (
    Pending,
    StripeStep,
    UpgradeStatus,
    UpgradeStep,
    charges_at_once,
    check_upgrade,
    decide_upgrade,
    request_key,
    stripe_step,
)
from seatsvc.errors import BaaRequired, BelowUsed, InvalidState, ValidationFailed
from seatsvc.seat_rules import PoolState, decide_seat_request
from seatsvc.types import BillingStatus, BlockReason, MemberStatus, SeatOutcome

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
SEATS = {"base": 3, "voice": 1}


def test_request_key_is_the_same_for_equal_bodies_in_any_key_order() -> None:
    one = request_key({"seats": {"base": 3, "voice": 1}, "return_url": "https://a.example"})
    two = request_key({"return_url": "https://a.example", "seats": {"voice": 1, "base": 3}})
    assert one == two and len(one) == 64
    assert one != request_key({"seats": {"base": 4, "voice": 1}, "return_url": "https://a.example"})


def test_check_upgrade_refusals_in_order() -> None:
    with pytest.raises(BaaRequired):
        check_upgrade(False, BillingStatus.PROVISIONING, {"base": 0, "voice": 0}, {"base": 9})
    with pytest.raises(InvalidState):
        check_upgrade(True, BillingStatus.PROVISIONING, SEATS, {})
    for gone in (BillingStatus.CANCELED, BillingStatus.UNPAID):
        with pytest.raises(InvalidState):
            check_upgrade(True, gone, SEATS, {})
    with pytest.raises(ValidationFailed):
        check_upgrade(True, BillingStatus.TRIALING, {"base": 0, "voice": 0}, {})
    with pytest.raises(BelowUsed) as below:
        check_upgrade(
            True, BillingStatus.TRIALING, {"base": 1, "voice": 0}, {"base": 1, "voice": 1}
        )
    assert below.value.details == {"seat_type": "voice", "used": 1, "requested": 0}
    for status in (BillingStatus.TRIALING, BillingStatus.PAUSED, BillingStatus.ACTIVE):
        check_upgrade(True, status, SEATS, {"base": 3, "voice": 1})  # exactly the seats in use


def pending(status: UpgradeStatus, key: str = "k", expires_in: timedelta | None = None) -> Pending:
    return Pending(status, key, NOW + expires_in if expires_in is not None else None)


@pytest.mark.parametrize(
    ("has_card", "newest", "expected"),
    [
        (True, None, UpgradeStep.CHARGE_NOW),
        (False, None, UpgradeStep.NEW_CHECKOUT),
        # The same request again: the same Checkout link, while it is worth handing out.
        (False, pending(UpgradeStatus.AWAITING_PAYMENT_METHOD, expires_in=timedelta(hours=1)),
         UpgradeStep.SAME_CHECKOUT),
        (False, pending(UpgradeStatus.AWAITING_PAYMENT_METHOD, expires_in=timedelta(minutes=2)),
         UpgradeStep.NEW_CHECKOUT),
        (False, pending(UpgradeStatus.AWAITING_PAYMENT_METHOD, expires_in=-timedelta(hours=1)),
         UpgradeStep.NEW_CHECKOUT),
        # A card appeared since (saved through payment-setup): charge now.
        (True, pending(UpgradeStatus.AWAITING_PAYMENT_METHOD, expires_in=timedelta(hours=1)),
         UpgradeStep.CHARGE_NOW),
        # Accepted already: never a second purchase or charge for the same request.
        (True, pending(UpgradeStatus.READY), UpgradeStep.ALREADY),
        (True, pending(UpgradeStatus.DONE), UpgradeStep.ALREADY),
        (False, pending(UpgradeStatus.DONE), UpgradeStep.ALREADY),
        # Another request (other seats): decided on its own.
        (True, pending(UpgradeStatus.DONE, key="other"), UpgradeStep.CHARGE_NOW),
        (False, pending(UpgradeStatus.AWAITING_PAYMENT_METHOD, key="other",
                        expires_in=timedelta(hours=1)), UpgradeStep.NEW_CHECKOUT),
        (False, pending(UpgradeStatus.SUPERSEDED), UpgradeStep.NEW_CHECKOUT),
    ],
)  # fmt: skip
def test_decide_upgrade(has_card: bool, newest: Pending | None, expected: UpgradeStep) -> None:
    assert decide_upgrade(has_card, "k", newest, NOW) == expected


def test_the_same_request_after_the_seats_changed_is_a_new_purchase() -> None:
    done = pending(UpgradeStatus.DONE)
    assert decide_upgrade(True, "k", done, NOW, holds_seats=False) == UpgradeStep.CHARGE_NOW
    ready = pending(UpgradeStatus.READY)  # still being charged: never twice
    assert decide_upgrade(True, "k", ready, NOW, holds_seats=False) == UpgradeStep.ALREADY


@pytest.mark.parametrize(
    ("status", "step"),
    [
        ("trialing", StripeStep.END_TRIAL),
        ("paused", StripeStep.RESUME),
        ("active", StripeStep.SET_ITEMS),
        ("past_due", StripeStep.SET_ITEMS),
        ("canceled", StripeStep.NONE),
        ("incomplete_expired", StripeStep.NONE),
    ],
)
def test_stripe_step_follows_the_subscription_status(status: str, step: StripeStep) -> None:
    assert stripe_step(status) == step


def test_only_a_trial_or_a_paused_trial_is_charged_by_the_upgrade_itself() -> None:
    assert charges_at_once(BillingStatus.TRIALING) and charges_at_once(BillingStatus.PAUSED)
    assert not charges_at_once(BillingStatus.ACTIVE)
    assert not charges_at_once(BillingStatus.PAST_DUE)


def trial_pool(**changes: object) -> PoolState:
    base = {
        "purchased": 1,
        "used": 1,
        "total_purchased": 1,
        "billing_status": BillingStatus.TRIALING,
        "in_trial": True,
        "trial_seat_limit": 1,
    }
    return PoolState(**{**base, **changes})  # type: ignore[arg-type]


@pytest.mark.parametrize("auto_add", [False, True])
def test_a_full_trial_blocks_with_trial_limit_whatever_auto_add_says(auto_add: bool) -> None:
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, trial_pool(auto_add=auto_add))
    assert (decision.outcome, decision.reason) == (SeatOutcome.BLOCKED, BlockReason.TRIAL_LIMIT)


def test_a_trial_with_allowance_left_but_no_free_seat_is_no_capacity() -> None:
    """Ops raised the allowance: the admin can still buy a seat, so `no_capacity` is right."""
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, trial_pool(trial_seat_limit=3))
    assert decision.reason == BlockReason.NO_CAPACITY


def test_a_paused_subscription_admits_nobody_new() -> None:
    paused = trial_pool(used=0, billing_status=BillingStatus.PAUSED, in_trial=False)
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, paused)
    assert decision.reason == BlockReason.SUBSCRIPTION_INACTIVE
    # Existing members keep their seats: an active member is simply already active.
    active = decide_seat_request(MemberStatus.ACTIVE, None)
    assert active.outcome == SeatOutcome.ALREADY_ACTIVE
