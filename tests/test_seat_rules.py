"""The seat ledger's pure decisions, without a database.

Every seat the service gives or adds is decided by `seatsvc.seat_rules`; if these
rules hold for every pool state hypothesis can think of, the services only have
to read the state under the lock and write the answer. Each rule has a property
test (any state) and an example test (the case a reader recognises).
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from seatsvc import seat_rules
from seatsvc.errors import (
    BaaRequired,
    BelowUsed,
    InvalidState,
    NoCapacity,
    SeatsvcError,
    TrialLimit,
)
from seatsvc.seat_rules import (
    PoolState,
    QuantityChange,
    SeatDecision,
    check_seat_assignment,
    check_settings_change,
    decide_quantity_change,
    decide_seat_request,
)
from seatsvc.types import (
    INACTIVE_BILLING_STATUSES,
    BillingStatus,
    BlockReason,
    MemberStatus,
    SeatEventType,
    SeatOutcome,
)

# ---- strategies ---------------------------------------------------------------

ALL_STATUSES = list(MemberStatus)
ACTIVE_LIKE = [s for s in BillingStatus if s not in INACTIVE_BILLING_STATUSES]
# past_due may still hand out a free seat, but never grow the bill.
CAN_AUTO_ADD = [s for s in ACTIVE_LIKE if s != BillingStatus.PAST_DUE]


@st.composite
def pool_states(
    draw: st.DrawFn,
    *,
    billing: Sequence[BillingStatus] | None = None,
    baa_signed: bool | None = None,
    auto_add: bool | None = None,
    in_trial: bool | None = None,
    full: bool | None = None,
) -> PoolState:
    """Any pool, including one where Stripe was lowered below the seats in use."""
    purchased = draw(st.integers(0, 40))
    if full is None:
        used = draw(st.integers(0, 50))
    elif full:
        used = draw(st.integers(purchased, purchased + 10))
    else:
        assume(purchased > 0)
        used = draw(st.integers(0, purchased - 1))
    return PoolState(
        purchased=purchased,
        used=used,
        total_purchased=purchased + draw(st.integers(0, 20)),
        baa_signed=draw(st.booleans()) if baa_signed is None else baa_signed,
        auto_add=draw(st.booleans()) if auto_add is None else auto_add,
        auto_add_cap=draw(st.none() | st.integers(0, 80)),
        billing_status=draw(st.sampled_from(billing or list(BillingStatus))),
        in_trial=draw(st.booleans()) if in_trial is None else in_trial,
        trial_seat_limit=draw(st.integers(1, 60)),
    )


reasons = st.none() | st.sampled_from(list(BlockReason))


def pool(**changes: object) -> PoolState:
    """A paid, BAA-signed pool with 5 seats of which 3 are used, unless told otherwise."""
    base = PoolState(purchased=5, used=3, total_purchased=5)
    return replace(base, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Applied:
    purchased: int
    used: int


def apply(status: MemberStatus, state: PoolState, decision: SeatDecision) -> Applied:
    """What the services write for a decision: the seat counts afterwards."""
    already_holding = status in (MemberStatus.INVITED, MemberStatus.ACTIVE)
    now_holding = decision.status in (MemberStatus.INVITED, MemberStatus.ACTIVE)
    used = state.used + (1 if now_holding and not already_holding else 0)
    return Applied(state.purchased + decision.seats_added, used)


# ---- seat requests: properties -----------------------------------------------


@given(status=st.sampled_from(ALL_STATUSES), state=pool_states(), reason=reasons)
@example(MemberStatus.PENDING_LOGIN, PoolState(2, 5, 2, auto_add=True), None)
@example(MemberStatus.PENDING_LOGIN, PoolState(0, 0, 0, auto_add=True), None)
def test_a_decision_never_overallocates(
    status: MemberStatus, state: PoolState, reason: BlockReason | None
) -> None:
    """Invariant 1: a seat given or added leaves used <= purchased, from any state."""
    try:
        decision = decide_seat_request(status, state, reason)
    except InvalidState:
        assert status == MemberStatus.REMOVED
        return
    after = apply(status, state, decision)
    if after.used > state.used:
        assert after.used <= after.purchased, (state, decision)
    # Never makes an over-allocated pool (Stripe lowered externally) worse.
    assert after.used - after.purchased <= max(0, state.used - state.purchased)
    assert decision.seats_added >= 0
    assert after.purchased >= state.purchased


@given(state=pool_states(billing=ACTIVE_LIKE, full=False))
def test_pending_login_with_a_free_seat_is_activated(state: PoolState) -> None:
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, state)
    assert decision == SeatDecision(SeatOutcome.ACTIVATED, MemberStatus.ACTIVE)
    assert decision.seats_added == 0


@given(state=pool_states(billing=ACTIVE_LIKE, full=True), auto_add=st.booleans())
def test_no_free_seat_without_usable_auto_add_blocks_for_capacity(
    state: PoolState, auto_add: bool
) -> None:
    """Auto-Add off, or on but locked because the BAA is unsigned: blocked, nothing added.

    A trial whose allowance is all bought says so (`trial_limit`): buying a seat is
    refused there, so `no_capacity` would send the admins the wrong way (issue #11)."""
    state = replace(state, auto_add=auto_add, baa_signed=not auto_add)
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, state)
    at_trial_limit = state.in_trial and state.total_purchased >= state.trial_seat_limit
    reason = BlockReason.TRIAL_LIMIT if at_trial_limit else BlockReason.NO_CAPACITY
    assert decision == SeatDecision(SeatOutcome.BLOCKED, MemberStatus.BLOCKED, reason)


@given(state=pool_states(billing=CAN_AUTO_ADD, baa_signed=True, auto_add=True, full=True))
def test_auto_add_adds_exactly_what_is_needed_unless_forbidden(state: PoolState) -> None:
    """Auto-add grows to used + 1 (one seat normally); only the cap or trial can stop it."""
    needed = state.used + 1 - state.purchased
    over_trial = state.in_trial and state.total_purchased + needed > state.trial_seat_limit
    over_cap = state.auto_add_cap is not None and state.used + 1 > state.auto_add_cap
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, state)
    if over_trial:
        expected = SeatDecision(SeatOutcome.BLOCKED, MemberStatus.BLOCKED, BlockReason.TRIAL_LIMIT)
    elif over_cap:
        expected = SeatDecision(
            SeatOutcome.BLOCKED, MemberStatus.BLOCKED, BlockReason.AUTO_ADD_CAP_REACHED
        )
    else:
        expected = SeatDecision(SeatOutcome.AUTO_ADDED, MemberStatus.ACTIVE, seats_added=needed)
        assert needed >= 1
        assert state.purchased + decision.seats_added == state.used + 1
    assert decision == expected


@given(
    state=pool_states(billing=list(INACTIVE_BILLING_STATUSES)),
)
def test_canceled_or_unpaid_subscription_gives_nobody_a_seat(state: PoolState) -> None:
    """Even a free seat is not handed out on a subscription that is not being paid."""
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, state)
    assert decision == SeatDecision(
        SeatOutcome.BLOCKED, MemberStatus.BLOCKED, BlockReason.SUBSCRIPTION_INACTIVE
    )


@given(state=pool_states(billing=[BillingStatus.PAST_DUE], baa_signed=True, auto_add=True))
def test_past_due_uses_free_seats_but_never_grows_the_bill(state: PoolState) -> None:
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, state)
    assert decision.seats_added == 0
    if state.available > 0:
        assert decision.outcome == SeatOutcome.ACTIVATED
    else:
        assert decision.reason == BlockReason.SUBSCRIPTION_INACTIVE


@given(state=pool_states(), status=st.sampled_from(ALL_STATUSES))
def test_auto_added_only_when_every_rule_allows_it(state: PoolState, status: MemberStatus) -> None:
    """The converse: whatever the state, an auto-add respects cap, trial, BAA and billing."""
    assume(status != MemberStatus.REMOVED)
    decision = decide_seat_request(status, state)
    if decision.outcome != SeatOutcome.AUTO_ADDED:
        assert decision.seats_added == 0
        return
    assert status == MemberStatus.PENDING_LOGIN
    assert state.auto_add
    assert state.baa_signed
    assert state.available == 0
    assert state.billing_status in CAN_AUTO_ADD
    assert decision.seats_added >= 1
    purchased_after = state.purchased + decision.seats_added
    if state.auto_add_cap is not None:
        assert purchased_after <= state.auto_add_cap
    if state.in_trial:
        assert state.total_purchased + decision.seats_added <= state.trial_seat_limit


@given(state=pool_states() | st.none(), reason=reasons)
def test_statuses_that_do_not_look_at_the_pool(
    state: PoolState | None, reason: BlockReason | None
) -> None:
    """invited/active/blocked are decided from the member alone (the services pass None)."""
    assert decide_seat_request(MemberStatus.INVITED, state) == SeatDecision(
        SeatOutcome.ACTIVATED, MemberStatus.ACTIVE
    )
    assert decide_seat_request(MemberStatus.ACTIVE, state) == SeatDecision(
        SeatOutcome.ALREADY_ACTIVE, MemberStatus.ACTIVE
    )
    assert decide_seat_request(MemberStatus.BLOCKED, state, reason) == SeatDecision(
        SeatOutcome.BLOCKED, MemberStatus.BLOCKED, reason
    )
    with pytest.raises(InvalidState):
        decide_seat_request(MemberStatus.REMOVED, state)


@given(
    status=st.sampled_from(ALL_STATUSES),
    state=pool_states(),
    reason=reasons,
)
def test_seat_request_is_pure(
    status: MemberStatus, state: PoolState, reason: BlockReason | None
) -> None:
    """Same input, same output: the services may retry a decision safely."""
    first = _outcome(lambda: decide_seat_request(status, state, reason))
    snapshot = replace(state)
    second = _outcome(lambda: decide_seat_request(status, state, reason))
    assert first == second
    assert state == snapshot


# ---- seat requests: examples --------------------------------------------------


def test_free_seat_activates() -> None:
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, pool(purchased=5, used=4))
    assert decision.outcome == SeatOutcome.ACTIVATED
    assert decision.status == MemberStatus.ACTIVE
    assert decision.reason is None


def test_last_seat_taken_then_the_next_one_is_blocked() -> None:
    assert decide_seat_request(MemberStatus.PENDING_LOGIN, pool(used=4)).outcome == (
        SeatOutcome.ACTIVATED
    )
    blocked = decide_seat_request(MemberStatus.PENDING_LOGIN, pool(used=5))
    assert (blocked.outcome, blocked.reason) == (SeatOutcome.BLOCKED, BlockReason.NO_CAPACITY)
    assert blocked.status == MemberStatus.BLOCKED


def test_auto_add_on_but_baa_unsigned_blocks_for_capacity() -> None:
    decision = decide_seat_request(
        MemberStatus.PENDING_LOGIN, pool(used=5, auto_add=True, baa_signed=False)
    )
    assert (decision.outcome, decision.reason) == (SeatOutcome.BLOCKED, BlockReason.NO_CAPACITY)


def test_auto_add_adds_one_seat() -> None:
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, pool(used=5, auto_add=True))
    assert decision == SeatDecision(SeatOutcome.AUTO_ADDED, MemberStatus.ACTIVE, seats_added=1)


def test_auto_add_after_an_external_reduction_catches_up() -> None:
    """Stripe was lowered to 2 while 5 are in use: the next login adds 4, not 1."""
    decision = decide_seat_request(
        MemberStatus.PENDING_LOGIN, pool(purchased=2, used=5, total_purchased=2, auto_add=True)
    )
    assert decision.outcome == SeatOutcome.AUTO_ADDED
    assert decision.seats_added == 4


def test_auto_add_from_zero_seats() -> None:
    decision = decide_seat_request(
        MemberStatus.PENDING_LOGIN, pool(purchased=0, used=0, total_purchased=0, auto_add=True)
    )
    assert decision.seats_added == 1


@pytest.mark.parametrize(
    ("cap", "outcome"),
    [
        (None, SeatOutcome.AUTO_ADDED),
        (7, SeatOutcome.AUTO_ADDED),
        (6, SeatOutcome.AUTO_ADDED),  # the cap is the most seats: 6 is allowed
        (5, SeatOutcome.BLOCKED),
        (0, SeatOutcome.BLOCKED),
        (3, SeatOutcome.BLOCKED),  # a cap below today's seats never grows them
    ],
)
def test_auto_add_cap(cap: int | None, outcome: SeatOutcome) -> None:
    decision = decide_seat_request(
        MemberStatus.PENDING_LOGIN, pool(used=5, auto_add=True, auto_add_cap=cap)
    )
    assert decision.outcome == outcome
    if outcome == SeatOutcome.BLOCKED:
        assert decision.reason == BlockReason.AUTO_ADD_CAP_REACHED
        assert decision.seats_added == 0


@pytest.mark.parametrize(
    ("total", "limit", "outcome"),
    [
        (1, 1, SeatOutcome.BLOCKED),
        (1, 2, SeatOutcome.AUTO_ADDED),
        (2, 2, SeatOutcome.BLOCKED),  # a voice seat counts against the same allowance
    ],
)
def test_auto_add_in_trial_respects_the_trial_allowance(
    total: int, limit: int, outcome: SeatOutcome
) -> None:
    state = pool(
        purchased=1,
        used=1,
        total_purchased=total,
        auto_add=True,
        billing_status=BillingStatus.TRIALING,
        in_trial=True,
        trial_seat_limit=limit,
    )
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, state)
    assert decision.outcome == outcome
    if outcome == SeatOutcome.BLOCKED:
        assert decision.reason == BlockReason.TRIAL_LIMIT


def test_trial_with_a_free_seat_activates() -> None:
    state = pool(
        purchased=1,
        used=0,
        total_purchased=1,
        billing_status=BillingStatus.TRIALING,
        in_trial=True,
        trial_seat_limit=1,
    )
    assert decide_seat_request(MemberStatus.PENDING_LOGIN, state).outcome == SeatOutcome.ACTIVATED


@pytest.mark.parametrize(
    ("billing", "reason"),
    [
        (BillingStatus.PAST_DUE, BlockReason.SUBSCRIPTION_INACTIVE),
        (BillingStatus.CANCELED, BlockReason.SUBSCRIPTION_INACTIVE),
        (BillingStatus.UNPAID, BlockReason.SUBSCRIPTION_INACTIVE),
        (BillingStatus.ACTIVE, None),
        (BillingStatus.TRIALING, None),
        (BillingStatus.PROVISIONING, None),
    ],
)
def test_auto_add_needs_a_subscription_in_good_standing(
    billing: BillingStatus, reason: BlockReason | None
) -> None:
    decision = decide_seat_request(
        MemberStatus.PENDING_LOGIN, pool(used=5, auto_add=True, billing_status=billing)
    )
    assert decision.reason == reason
    assert decision.outcome == (SeatOutcome.AUTO_ADDED if reason is None else SeatOutcome.BLOCKED)


@pytest.mark.parametrize(
    ("billing", "outcome"),
    [
        (BillingStatus.PAST_DUE, SeatOutcome.ACTIVATED),
        (BillingStatus.CANCELED, SeatOutcome.BLOCKED),
        (BillingStatus.UNPAID, SeatOutcome.BLOCKED),
    ],
)
def test_free_seat_and_billing_trouble(billing: BillingStatus, outcome: SeatOutcome) -> None:
    decision = decide_seat_request(MemberStatus.PENDING_LOGIN, pool(billing_status=billing))
    assert decision.outcome == outcome


def test_invited_member_is_activated_without_taking_another_seat() -> None:
    state = pool(purchased=3, used=3)  # full, counting this member's invite
    decision = decide_seat_request(MemberStatus.INVITED, state)
    assert decision == SeatDecision(SeatOutcome.ACTIVATED, MemberStatus.ACTIVE)
    assert decision.seats_added == 0
    assert apply(MemberStatus.INVITED, state, decision) == Applied(purchased=3, used=3)


def test_active_member_is_already_active() -> None:
    decision = decide_seat_request(MemberStatus.ACTIVE, None)
    assert decision == SeatDecision(SeatOutcome.ALREADY_ACTIVE, MemberStatus.ACTIVE)


@pytest.mark.parametrize("reason", list(BlockReason))
def test_blocked_member_stays_blocked_even_when_a_seat_is_free(reason: BlockReason) -> None:
    """Unblocking is the admin's re-invite, never a retried login."""
    decision = decide_seat_request(MemberStatus.BLOCKED, pool(used=0, auto_add=True), reason)
    assert decision == SeatDecision(SeatOutcome.BLOCKED, MemberStatus.BLOCKED, reason)


def test_removed_member_is_invalid_state() -> None:
    with pytest.raises(InvalidState) as raised:
        decide_seat_request(MemberStatus.REMOVED, pool())
    assert raised.value.code == "invalid_state"
    assert raised.value.status == 409


def test_pending_login_needs_the_locked_pool() -> None:
    with pytest.raises(ValueError, match="pool"):
        decide_seat_request(MemberStatus.PENDING_LOGIN, None)


# ---- quantity changes ---------------------------------------------------------


def expected_quantity_error(
    state: PoolState, quantity: int
) -> tuple[type[SeatsvcError], dict[str, object]] | None:
    """The refusal API.md promises for this change, in the order it lists them."""
    total_after = state.total_purchased - state.purchased + quantity
    if not state.baa_signed:
        return BaaRequired, {}
    if quantity < state.used:
        return BelowUsed, {"used": state.used, "requested": quantity}
    if state.in_trial and quantity > state.purchased and total_after > state.trial_seat_limit:
        return TrialLimit, {
            "trial_seat_limit": state.trial_seat_limit,
            "requested_total": total_after,
        }
    return None


@given(state=pool_states(), quantity=st.integers(0, 100))
def test_quantity_change_rules(state: PoolState, quantity: int) -> None:
    """Exactly one outcome per input: a refusal, or the delta and its ledger event."""
    refusal = expected_quantity_error(state, quantity)
    if refusal is not None:
        error_type, details = refusal
        with pytest.raises(error_type) as raised:
            decide_quantity_change(state, quantity)
        assert raised.value.details == details
        return
    change = decide_quantity_change(state, quantity)
    assert change.delta == quantity - state.purchased
    assert change.changes_anything == (quantity != state.purchased)
    expected_type = {1: SeatEventType.PURCHASED, -1: SeatEventType.REDUCED, 0: None}
    assert change.event_type == expected_type[(change.delta > 0) - (change.delta < 0)]
    # The quantity the services write never leaves a member without a seat.
    assert state.purchased + change.delta >= state.used


@given(state=pool_states(), quantity=st.integers(0, 100))
def test_quantity_change_is_pure(state: PoolState, quantity: int) -> None:
    first = _outcome(lambda: decide_quantity_change(state, quantity))
    assert first == _outcome(lambda: decide_quantity_change(state, quantity))


def test_buying_seats_is_a_purchase() -> None:
    assert decide_quantity_change(pool(), 8) == QuantityChange(3, SeatEventType.PURCHASED)


def test_reducing_to_the_seats_in_use_is_allowed() -> None:
    assert decide_quantity_change(pool(), 3) == QuantityChange(-2, SeatEventType.REDUCED)


def test_same_quantity_changes_nothing() -> None:
    change = decide_quantity_change(pool(), 5)
    assert change == QuantityChange(0, None)
    assert not change.changes_anything


def test_reducing_below_used_is_refused() -> None:
    with pytest.raises(BelowUsed) as raised:
        decide_quantity_change(pool(), 2)
    assert raised.value.details == {"used": 3, "requested": 2}
    assert (raised.value.status, raised.value.code) == (409, "below_used")


@pytest.mark.parametrize("quantity", [0, 5, 6])
def test_any_quantity_change_needs_the_baa(quantity: int) -> None:
    with pytest.raises(BaaRequired):
        decide_quantity_change(pool(used=0, baa_signed=False), quantity)


def test_baa_is_checked_before_below_used() -> None:
    with pytest.raises(BaaRequired):
        decide_quantity_change(pool(baa_signed=False), 0)


def test_trial_limit_applies_to_increases_only() -> None:
    trial = pool(
        purchased=3,
        used=1,
        total_purchased=3,
        in_trial=True,
        billing_status=BillingStatus.TRIALING,
        trial_seat_limit=1,
    )
    with pytest.raises(TrialLimit) as raised:
        decide_quantity_change(trial, 4)
    assert raised.value.details == {"trial_seat_limit": 1, "requested_total": 4}
    # Already over the allowance (support lowered it): reducing is still allowed.
    assert decide_quantity_change(trial, 2) == QuantityChange(-1, SeatEventType.REDUCED)
    assert decide_quantity_change(trial, 3) == QuantityChange(0, None)


def test_trial_limit_counts_every_seat_type() -> None:
    trial = pool(
        purchased=0,
        used=0,
        total_purchased=1,
        in_trial=True,
        billing_status=BillingStatus.TRIALING,
        trial_seat_limit=2,
    )
    assert decide_quantity_change(trial, 1) == QuantityChange(1, SeatEventType.PURCHASED)
    with pytest.raises(TrialLimit):
        decide_quantity_change(trial, 2)


def test_paying_agency_has_no_trial_limit() -> None:
    paying = pool(purchased=1, used=0, total_purchased=1, trial_seat_limit=1)
    assert decide_quantity_change(paying, 50) == QuantityChange(49, SeatEventType.PURCHASED)


# ---- explicit seat assignment (invite, re-invite, seat move) -------------------


@given(state=pool_states())
def test_seat_assignment_rules(state: PoolState) -> None:
    """A free seat now, or a clear refusal; auto-add never applies to explicit invites."""
    if not state.baa_signed:
        refusal: tuple[type[SeatsvcError], dict[str, object]] | None = (BaaRequired, {})
    elif state.billing_status in INACTIVE_BILLING_STATUSES:
        refusal = (InvalidState, {})
    elif state.used >= state.purchased:
        refusal = (NoCapacity, {"purchased": state.purchased, "used": state.used})
    else:
        refusal = None
    if refusal is None:
        check_seat_assignment(state)  # raises on refusal
        return
    error_type, details = refusal
    with pytest.raises(error_type) as raised:
        check_seat_assignment(state)
    assert raised.value.details == details


def test_invite_with_a_free_seat_passes() -> None:
    check_seat_assignment(pool(used=4))  # raises on refusal


def test_invite_when_full_is_no_capacity_even_with_auto_add() -> None:
    with pytest.raises(NoCapacity) as raised:
        check_seat_assignment(pool(used=5, auto_add=True))
    assert raised.value.details == {"purchased": 5, "used": 5}


def test_invite_over_allocated_pool_is_no_capacity() -> None:
    with pytest.raises(NoCapacity):
        check_seat_assignment(pool(purchased=2, used=5))


def test_invite_needs_the_baa() -> None:
    with pytest.raises(BaaRequired, match="moving"):
        check_seat_assignment(pool(baa_signed=False), "moving a member")


@pytest.mark.parametrize("billing", sorted(INACTIVE_BILLING_STATUSES))
def test_invite_on_an_inactive_subscription_is_refused(billing: BillingStatus) -> None:
    with pytest.raises(InvalidState):
        check_seat_assignment(pool(billing_status=billing))


def test_invite_on_past_due_with_a_free_seat_passes() -> None:
    check_seat_assignment(pool(billing_status=BillingStatus.PAST_DUE))  # raises on refusal


# ---- settings -----------------------------------------------------------------


@pytest.mark.parametrize("baa_signed", [True, False])
@pytest.mark.parametrize("turning_on", [True, False])
@pytest.mark.parametrize("setting_cap", [True, False])
def test_settings_change(baa_signed: bool, turning_on: bool, setting_cap: bool) -> None:
    """Auto-Add and its cap are locked until the BAA is signed; turning it off never is."""
    refused = (turning_on or setting_cap) and not baa_signed
    if refused:
        with pytest.raises(BaaRequired):
            check_settings_change(baa_signed, turning_on, setting_cap)
    else:
        check_settings_change(baa_signed, turning_on, setting_cap)  # raises on refusal


# ---- purity -------------------------------------------------------------------


def test_seat_rules_import_no_io() -> None:
    """No clock, randomness, database or framework: the module's imports prove it."""
    tree = ast.parse(inspect.getsource(seat_rules))
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    assert imported <= {"__future__", "dataclasses", "seatsvc.errors", "seatsvc.types"}


@settings(max_examples=50)
@given(state=pool_states())
def test_pool_state_is_immutable(state: PoolState) -> None:
    with pytest.raises(AttributeError):
        state.used = 0  # type: ignore[misc]
    assert state.available == max(0, state.purchased - state.used)


def _outcome(call: object) -> object:
    """A decision or the error it raised, comparable across calls."""
    assert callable(call)
    try:
        return call()
    except Exception as error:
        details = getattr(error, "details", None)
        return (type(error), str(error), details)
