"""Trial to paid: the upgrade's pure decisions (no I/O, no clock of their own).

`check_upgrade` says whether an upgrade may be asked for at all; `decide_upgrade`
what a request does given what is already pending; `stripe_step` how Stripe is
moved once a card is on file. The services and jobs gather the facts and obey.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from seatsvc.errors import BaaRequired, BelowUsed, InvalidState, ValidationFailed
from seatsvc.types import BillingStatus

# A Checkout link about to expire is not handed out again: the admin needs time to type.
REUSE_MARGIN = timedelta(minutes=5)


class UpgradeStatus(StrEnum):
    AWAITING_PAYMENT_METHOD = "awaiting_payment_method"
    READY = "ready"  # seats purchased in the ledger; Stripe must end the trial and charge
    DONE = "done"
    SUPERSEDED = "superseded"  # a newer request replaced it before it was ready


class UpgradeStep(StrEnum):
    CHARGE_NOW = "charge_now"  # a card is on file: purchase now, the worker charges
    NEW_CHECKOUT = "new_checkout"  # no card: a Checkout Session collects one first
    SAME_CHECKOUT = "same_checkout"  # the same request is already waiting for its card
    ALREADY = "already"  # the same request was already accepted: nothing new


class StripeStep(StrEnum):
    END_TRIAL = "end_trial"  # items + trial_end=now: the first invoice, charged now
    RESUME = "resume"  # paused at the trial's end: items, then subscriptions.resume
    SET_ITEMS = "set_items"  # already paying: items with prorations invoiced now
    NONE = "none"  # canceled or gone: nothing Stripe can do


@dataclass(frozen=True)
class Pending:
    """The agency's newest upgrade request, as stored."""

    status: UpgradeStatus
    request_key: str
    checkout_expires_at: datetime | None


# Statuses an agency may upgrade from; `provisioning` has no Stripe customer yet.
UPGRADABLE = frozenset(
    {BillingStatus.TRIALING, BillingStatus.PAUSED, BillingStatus.ACTIVE, BillingStatus.PAST_DUE}
)


def request_key(body: Mapping[str, Any]) -> str:
    """SHA-256 of the request body in a canonical form: equal bodies, equal keys."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_upgrade(
    baa_signed: bool, billing_status: str, seats: Mapping[str, int], used: Mapping[str, int]
) -> None:
    """Refusals, in the order an admin should hear them."""
    if not baa_signed:
        raise BaaRequired("the agency's BAA must be signed before buying seats")
    if billing_status not in UPGRADABLE:
        raise InvalidState(
            f"the agency's subscription is {billing_status}: it cannot be upgraded now",
            {"billing_status": billing_status},
        )
    if sum(seats.values()) < 1:
        raise ValidationFailed(
            "a paid plan has at least one seat", {"seats": ["at least one seat in total"]}
        )
    for seat, quantity in sorted(seats.items()):
        in_use = used.get(seat, 0)
        if quantity < in_use:
            raise BelowUsed(
                f"{in_use} {seat} seats are in use: buy at least that many",
                {"seat_type": seat, "used": in_use, "requested": quantity},
            )


def decide_upgrade(
    has_card: bool, key: str, pending: Pending | None, now: datetime, holds_seats: bool = True
) -> UpgradeStep:
    """`holds_seats`: the agency's purchased seats are the ones asked for (a request done
    long ago, with seats changed since, is a new purchase, not a repeat)."""
    same = pending is not None and pending.request_key == key
    if same and pending is not None and pending.status == UpgradeStatus.READY:
        return UpgradeStep.ALREADY
    if same and pending is not None and pending.status == UpgradeStatus.DONE and holds_seats:
        return UpgradeStep.ALREADY
    if has_card:
        return UpgradeStep.CHARGE_NOW
    if (
        same
        and pending is not None
        and pending.status == UpgradeStatus.AWAITING_PAYMENT_METHOD
        and pending.checkout_expires_at is not None
        and pending.checkout_expires_at > now + REUSE_MARGIN
    ):
        return UpgradeStep.SAME_CHECKOUT
    return UpgradeStep.NEW_CHECKOUT


def stripe_step(stripe_status: str) -> StripeStep:
    """How to make Stripe charge for the upgrade, from the subscription's status now."""
    if stripe_status == "trialing":
        return StripeStep.END_TRIAL
    if stripe_status == "paused":
        return StripeStep.RESUME
    if stripe_status in ("active", "past_due"):
        return StripeStep.SET_ITEMS
    return StripeStep.NONE


def charges_at_once(billing_status: str) -> bool:
    """A trialing or paused agency pays its first invoice as part of the upgrade; one
    already paying buys seats like any purchase (prorated by the billing worker)."""
    return billing_status in (BillingStatus.TRIALING, BillingStatus.PAUSED)
