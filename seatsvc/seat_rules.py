"""Seat decisions as pure functions: no I/O, no clock, no database.

The services gather a `PoolState` under the seat-pool row lock, ask one of
these functions what to do, and write the answer. Keeping the rules here means
every rule is tested exhaustively without a server (tests/test_ledger.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from seatsvc.errors import BaaRequired, BelowUsed, InvalidState, NoCapacity, TrialLimit
from seatsvc.types import (
    INACTIVE_BILLING_STATUSES,
    BillingStatus,
    BlockReason,
    MemberStatus,
    SeatEventType,
    SeatOutcome,
)


@dataclass(frozen=True)
class PoolState:
    """What a decision may look at: one seat pool and the agency's rules."""

    purchased: int
    used: int
    # Seats bought across every seat type: a trial's allowance counts them all.
    total_purchased: int
    baa_signed: bool = True
    auto_add: bool = False
    auto_add_cap: int | None = None
    billing_status: str = BillingStatus.ACTIVE
    in_trial: bool = False
    trial_seat_limit: int = 1

    @property
    def available(self) -> int:
        return max(0, self.purchased - self.used)


@dataclass(frozen=True)
class SeatDecision:
    outcome: SeatOutcome
    status: MemberStatus
    reason: BlockReason | None = None
    seats_added: int = 0


def decide_seat_request(
    status: MemberStatus, pool: PoolState | None, blocked_reason: BlockReason | None = None
) -> SeatDecision:
    """A clinician's first verified login: give a seat, add one, or block.

    Only a `pending_login` member's decision looks at the pool; the services
    lock and read it for that case alone.
    """
    match status:
        case MemberStatus.REMOVED:
            raise InvalidState("a removed member cannot take a seat")
        case MemberStatus.ACTIVE:
            return SeatDecision(SeatOutcome.ALREADY_ACTIVE, MemberStatus.ACTIVE)
        case MemberStatus.BLOCKED:
            # Unblocking is the admin's act (re-invite), never a retried login.
            return SeatDecision(SeatOutcome.BLOCKED, MemberStatus.BLOCKED, blocked_reason)
        case MemberStatus.INVITED:
            # The invite already holds this member's seat.
            return SeatDecision(SeatOutcome.ACTIVATED, MemberStatus.ACTIVE)
    if pool is None:
        raise ValueError("a pending_login member's decision needs the locked pool state")
    return _decide_for_pending_login(pool)


def _decide_for_pending_login(pool: PoolState) -> SeatDecision:
    if pool.billing_status in INACTIVE_BILLING_STATUSES:
        return _blocked(BlockReason.SUBSCRIPTION_INACTIVE)
    if pool.available > 0:
        return SeatDecision(SeatOutcome.ACTIVATED, MemberStatus.ACTIVE)
    if not (pool.auto_add and pool.baa_signed):
        # In a trial whose allowance is all bought, the allowance is what stops this
        # login: buying a seat is refused there, upgrading is the way out.
        if trial_allowance_used(pool):
            return _blocked(BlockReason.TRIAL_LIMIT)
        return _blocked(BlockReason.NO_CAPACITY)
    if pool.billing_status == BillingStatus.PAST_DUE:
        # Never grow a bill that is not being paid.
        return _blocked(BlockReason.SUBSCRIPTION_INACTIVE)
    # Normally one seat; more only if Stripe was lowered below the seats in use,
    # so that after this decision used <= purchased holds again.
    needed = pool.used + 1 - pool.purchased
    if pool.in_trial and pool.total_purchased + needed > pool.trial_seat_limit:
        return _blocked(BlockReason.TRIAL_LIMIT)
    if pool.auto_add_cap is not None and pool.purchased + needed > pool.auto_add_cap:
        return _blocked(BlockReason.AUTO_ADD_CAP_REACHED)
    return SeatDecision(SeatOutcome.AUTO_ADDED, MemberStatus.ACTIVE, seats_added=needed)


def trial_allowance_used(pool: PoolState) -> bool:
    """In a trial, no more seats can be bought: every seat the trial allows is bought."""
    return pool.in_trial and pool.total_purchased >= pool.trial_seat_limit


def _blocked(reason: BlockReason) -> SeatDecision:
    return SeatDecision(SeatOutcome.BLOCKED, MemberStatus.BLOCKED, reason)


def require_baa(pool: PoolState, action: str) -> None:
    if not pool.baa_signed:
        raise BaaRequired(f"the agency's BAA must be signed before {action}")


def check_seat_assignment(pool: PoolState, action: str = "an invite") -> None:
    """An explicit invite, re-invite or seat move: a free seat now, never auto-add."""
    require_baa(pool, action)
    if pool.billing_status in INACTIVE_BILLING_STATUSES:
        raise InvalidState("the agency's subscription is not active")
    if pool.available <= 0:
        raise NoCapacity(
            "no seat is free: add a seat or remove a member first",
            {"purchased": pool.purchased, "used": pool.used},
        )


@dataclass(frozen=True)
class QuantityChange:
    delta: int
    event_type: SeatEventType | None

    @property
    def changes_anything(self) -> bool:
        return self.delta != 0


def decide_quantity_change(pool: PoolState, quantity: int) -> QuantityChange:
    """The admin buys or reduces seats of one type."""
    require_baa(pool, "changing seats")
    if quantity < pool.used:
        raise BelowUsed(
            f"{pool.used} seats are in use: remove members before reducing below that",
            {"used": pool.used, "requested": quantity},
        )
    total_after = pool.total_purchased - pool.purchased + quantity
    if pool.in_trial and quantity > pool.purchased and total_after > pool.trial_seat_limit:
        raise TrialLimit(
            f"the trial allows {pool.trial_seat_limit} seat(s) in total",
            {"trial_seat_limit": pool.trial_seat_limit, "requested_total": total_after},
        )
    delta = quantity - pool.purchased
    if delta > 0:
        return QuantityChange(delta, SeatEventType.PURCHASED)
    if delta < 0:
        return QuantityChange(delta, SeatEventType.REDUCED)
    return QuantityChange(0, None)


def check_settings_change(baa_signed: bool, turning_auto_add_on: bool, setting_a_cap: bool) -> None:
    """Auto-Add (and its cap) is locked until the BAA is signed; turning it off never is."""
    if (turning_auto_add_on or setting_a_cap) and not baa_signed:
        raise BaaRequired("Auto-Add Seats is locked until the agency's BAA is signed")
