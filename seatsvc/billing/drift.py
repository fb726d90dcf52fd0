"""What to do when Stripe and the ledger disagree: pure decisions, no I/O.

Both the webhook handlers and the reconcile sweep compare a freshly fetched
subscription with the ledger and ask these functions what to do, so a lost
webhook healed by the sweep ends exactly where the webhook would have left it.

The rule (DESIGN.md invariant 4 and 5): the ledger's purchased count is what
Stripe must converge to, unless someone changed Stripe directly (a person in
Stripe's dashboard) while no local change was waiting to be sent — then
Stripe's number is adopted as the purchased count. If a local change is
pending, the billing worker's absolute sync wins.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

OVER_CAPACITY = "over_capacity"
PAYMENT_FAILED = "payment_failed"


class DriftAction(StrEnum):
    NONE = "none"  # Stripe holds what the ledger says it billed and bought
    CONFIRM = "confirm"  # Stripe holds what was bought: record it as billed
    ADOPT = "adopt"  # changed in Stripe directly: it becomes the purchased count
    SYNC = "sync"  # a local change is on its way: the billing worker's sync wins


@dataclass(frozen=True)
class LocalSeats:
    """One seat type as the ledger sees it."""

    purchased: int
    billed: int | None
    used: int


@dataclass(frozen=True)
class SeatDrift:
    seat_type: str
    action: DriftAction
    stripe_quantity: int
    delta: int = 0  # change of `purchased` when adopted
    over_capacity: bool = False  # adopted below the members holding a seat


def local_change_pending(desired_version: int, synced_version: int, status: str) -> bool:
    """A change the billing worker has not confirmed in Stripe yet (pending or failed)."""
    return desired_version > synced_version or status != "done"


def decide_seat(
    seat_type: str, local: LocalSeats, stripe_quantity: int, pending: bool
) -> SeatDrift:
    if stripe_quantity == local.purchased:
        action = DriftAction.NONE if local.billed == stripe_quantity else DriftAction.CONFIRM
        return SeatDrift(seat_type, action, stripe_quantity)
    if pending:
        return SeatDrift(seat_type, DriftAction.SYNC, stripe_quantity)
    return SeatDrift(
        seat_type,
        DriftAction.ADOPT,
        stripe_quantity,
        delta=stripe_quantity - local.purchased,
        # Nobody is evicted: the members keep their seats, the admins are told.
        over_capacity=stripe_quantity < local.used,
    )


def decide(
    local: Mapping[str, LocalSeats], stripe: Mapping[str, int], pending: bool
) -> list[SeatDrift]:
    """Every seat type the ledger knows, in a stable order; Stripe lacking an item means 0."""
    return [decide_seat(seat, local[seat], stripe.get(seat, 0), pending) for seat in sorted(local)]


def attention_after_seats(current: str | None, over_capacity: bool) -> str | None:
    """Over capacity flags the agency; it clears once every pool covers its members.

    A declined payment outranks it (money first): the flag stays `payment_failed`.
    """
    if current == PAYMENT_FAILED:
        return current
    if over_capacity:
        return OVER_CAPACITY
    return None if current == OVER_CAPACITY else current


class InvoiceOutcome(StrEnum):
    FLAG = "flag"  # payment failed and the invoice is still unpaid: tell the admins
    CLEAR = "clear"  # paid: a payment_failed flag can go
    STALE = "stale"  # the event no longer describes the invoice, or a newer one was applied


def decide_invoice(event_type: str, invoice_status: str, newer_applied: bool) -> InvoiceOutcome:
    """`invoice_status` is the invoice as re-fetched now, not as the event carried it."""
    if newer_applied:
        return InvoiceOutcome.STALE
    if event_type == "invoice.payment_failed":
        return InvoiceOutcome.FLAG if invoice_status == "open" else InvoiceOutcome.STALE
    return InvoiceOutcome.CLEAR if invoice_status == "paid" else InvoiceOutcome.STALE


def attention_after_invoice(current: str | None, outcome: InvoiceOutcome) -> str | None:
    if outcome == InvoiceOutcome.FLAG:
        return PAYMENT_FAILED
    if outcome == InvoiceOutcome.CLEAR and current == PAYMENT_FAILED:
        return None
    return current
