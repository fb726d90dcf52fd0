"""Trial to paid, the database side: upgrade requests, purchasing their seats, the card.

Nothing here calls Stripe or commits. `begin_upgrade` takes the decision under the
agency's row lock and the seat-pool locks; the Checkout Session (when one is needed)
is created by the caller between two transactions; `mark_ready` purchases the seats
the moment a card is on file, in the same transaction as the billing outbox bump,
so the ledger and the intent to charge can never part.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seatsvc.billing.upgrade_rules import (
    Pending,
    UpgradeStatus,
    UpgradeStep,
    charges_at_once,
    check_upgrade,
    decide_upgrade,
)
from seatsvc.db import for_update
from seatsvc.errors import InvalidState, NotFound, SeatsvcError
from seatsvc.models import Agency, PlanUpgrade, utcnow
from seatsvc.services import outbox
from seatsvc.services.agencies import AgencyView, record_seat_event, view_agency
from seatsvc.services.pools import lock_pools, seats_used
from seatsvc.types import NotificationKind, SeatEventType, SeatType

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpgradeStart:
    step: UpgradeStep
    view: AgencyView | None = None  # CHARGE_NOW / ALREADY: the agency to answer with
    upgrade_id: int | None = None  # a READY upgrade the worker must charge
    customer_id: str | None = None  # NEW_CHECKOUT: whose card to collect
    # NEW_CHECKOUT: how many sessions this same request made before (their links expired):
    # part of the Stripe key, so Stripe does not replay an expired session.
    attempt: int = 0
    checkout_url: str | None = None  # SAME_CHECKOUT
    checkout_expires_at: datetime | None = None


@dataclass(frozen=True)
class ReadyUpgrade:
    """What the worker needs to make Stripe charge for an upgrade."""

    upgrade_id: int
    agency_id: str
    subscription_id: str
    quantities: dict[str, int]
    item_ids: dict[str, str | None]


def _locked_agency(session: Session, agency_id: str) -> Agency:
    agency = session.get(Agency, agency_id, with_for_update=True)
    if agency is None:
        raise NotFound(f"agency {agency_id!r} not found")
    return agency


def require_customer(session: Session, agency_id: str) -> tuple[str, str | None]:
    """(customer id, current card id) for payment-setup and the portal; 409 without one."""
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFound(f"agency {agency_id!r} not found")
    if not agency.stripe_customer_id:
        raise InvalidState(
            "the agency has no Stripe customer yet (billing is being set up): try again shortly",
            {"billing_status": agency.billing_status},
        )
    card = (agency.payment_method or {}).get("id")
    return agency.stripe_customer_id, str(card) if card else None


def _newest(session: Session, agency_id: str) -> PlanUpgrade | None:
    query = (
        select(PlanUpgrade)
        .where(PlanUpgrade.agency_id == agency_id)
        .order_by(PlanUpgrade.id.desc())
        .limit(1)
    )
    return session.scalar(for_update(query))


def begin_upgrade(
    session: Session, agency_id: str, seats: dict[str, int], key: str, now: datetime
) -> UpgradeStart:
    agency = _locked_agency(session, agency_id)
    pools = lock_pools(session, agency_id)
    used = seats_used(session, agency_id)
    check_upgrade(agency.baa_signed, agency.billing_status, seats, used)
    if not agency.stripe_customer_id or not agency.stripe_subscription_id:
        raise InvalidState("the agency's billing is still being set up: try again shortly")
    newest = _newest(session, agency_id)
    pending = (
        Pending(UpgradeStatus(newest.status), newest.request_key, newest.checkout_expires_at)
        if newest is not None
        else None
    )
    holds = all(pools[seat].purchased == quantity for seat, quantity in seats.items())
    step = decide_upgrade(agency.payment_method is not None, key, pending, now, holds)
    if step == UpgradeStep.ALREADY:
        return UpgradeStart(step, view=view_agency(session, agency))
    if step == UpgradeStep.SAME_CHECKOUT:
        assert newest is not None
        return UpgradeStart(
            step, checkout_url=newest.checkout_url, checkout_expires_at=newest.checkout_expires_at
        )
    if step == UpgradeStep.NEW_CHECKOUT:
        earlier = session.scalar(
            select(func.count())
            .select_from(PlanUpgrade)
            .where(PlanUpgrade.agency_id == agency_id, PlanUpgrade.request_key == key)
        )
        return UpgradeStart(step, customer_id=agency.stripe_customer_id, attempt=int(earlier or 0))
    _supersede_waiting(session, agency_id)
    upgrade = PlanUpgrade(
        agency_id=agency_id,
        base=seats[SeatType.BASE],
        voice=seats[SeatType.VOICE],
        status=UpgradeStatus.AWAITING_PAYMENT_METHOD,
        request_key=key,
        created_at=now,
    )
    session.add(upgrade)
    session.flush()
    _purchase(session, agency, upgrade, pools_locked=pools)
    return UpgradeStart(step, view=view_agency(session, agency), upgrade_id=upgrade.id)


def record_checkout(
    session: Session,
    agency_id: str,
    seats: dict[str, int],
    key: str,
    checkout_id: str,
    url: str,
    expires_at: datetime,
) -> PlanUpgrade:
    """The upgrade waits for this Checkout Session; an older waiting one is superseded."""
    _locked_agency(session, agency_id)
    existing = session.scalar(
        select(PlanUpgrade).where(PlanUpgrade.checkout_session_id == checkout_id)
    )
    if existing is not None:  # the same request, concurrently: Stripe replayed the session
        return existing
    _supersede_waiting(session, agency_id)
    upgrade = PlanUpgrade(
        agency_id=agency_id,
        base=seats[SeatType.BASE],
        voice=seats[SeatType.VOICE],
        status=UpgradeStatus.AWAITING_PAYMENT_METHOD,
        request_key=key,
        checkout_session_id=checkout_id,
        checkout_url=url,
        checkout_expires_at=expires_at,
        created_at=utcnow(),
    )
    session.add(upgrade)
    session.flush()
    return upgrade


def checkout_expired(session: Session, checkout_id: str) -> bool:
    """Stripe expired the session: the same request again gets a new link, not this one."""
    upgrade = session.scalar(
        for_update(select(PlanUpgrade).where(PlanUpgrade.checkout_session_id == checkout_id))
    )
    if upgrade is None or upgrade.status != UpgradeStatus.AWAITING_PAYMENT_METHOD:
        return False
    upgrade.checkout_expires_at = min(upgrade.checkout_expires_at or utcnow(), utcnow())
    return True


def _supersede_waiting(session: Session, agency_id: str) -> None:
    waiting = session.scalars(
        for_update(
            select(PlanUpgrade).where(
                PlanUpgrade.agency_id == agency_id,
                PlanUpgrade.status == UpgradeStatus.AWAITING_PAYMENT_METHOD,
            )
        )
    )
    for row in waiting:
        row.status = UpgradeStatus.SUPERSEDED


def record_card(
    session: Session, agency_id: str, card: dict[str, Any] | None, checkout_id: str | None
) -> int | None:
    """The customer's default card is now `card`. If an upgrade waited for this Checkout
    Session, its seats are purchased now; returns the upgrade the worker must charge."""
    agency = _locked_agency(session, agency_id)
    agency.payment_method = card
    if card is None or checkout_id is None:
        return None
    upgrade = session.scalar(
        for_update(select(PlanUpgrade).where(PlanUpgrade.checkout_session_id == checkout_id))
    )
    if upgrade is None or upgrade.status != UpgradeStatus.AWAITING_PAYMENT_METHOD:
        return None  # a plain card change, or a completion delivered again
    used = seats_used(session, agency_id)
    seats = {SeatType.BASE.value: upgrade.base, SeatType.VOICE.value: upgrade.voice}
    try:
        check_upgrade(agency.baa_signed, agency.billing_status, seats, used)
    except SeatsvcError as why:
        # No longer possible (more members now, the subscription ended): the card is
        # kept, the upgrade is dropped rather than failing the event forever.
        upgrade.status = UpgradeStatus.SUPERSEDED
        log.warning("upgrade %s of %s dropped: %s", upgrade.id, agency_id, why.message)
        return None
    _purchase(session, agency, upgrade, pools_locked=None)
    return upgrade.id


def _purchase(
    session: Session, agency: Agency, upgrade: PlanUpgrade, pools_locked: dict[str, Any] | None
) -> None:
    """The upgrade's seats become the purchased seats; Stripe follows (outbox bump)."""
    pools = pools_locked if pools_locked is not None else lock_pools(session, agency.id)
    wanted = {SeatType.BASE.value: upgrade.base, SeatType.VOICE.value: upgrade.voice}
    for seat, quantity in sorted(wanted.items()):
        pool = pools[seat]
        delta = quantity - pool.purchased
        if delta == 0:
            continue
        pool.purchased = quantity
        record_seat_event(
            session,
            agency.id,
            SeatEventType.PURCHASED if delta > 0 else SeatEventType.REDUCED,
            seat,
            delta,
            quantity,
            actor="upgrade",
            detail={"upgrade": upgrade.id},
        )
    outbox.request_billing_sync(session, agency.id)
    if charges_at_once(agency.billing_status):
        upgrade.status = UpgradeStatus.READY  # the worker ends the trial and charges
    else:
        # Already paying: a purchase like any other, prorated by the billing worker.
        upgrade.status = UpgradeStatus.DONE
        upgrade.completed_at = utcnow()


def ready_upgrade(session: Session, agency_id: str) -> ReadyUpgrade | None:
    agency = session.get(Agency, agency_id)
    upgrade = session.scalar(
        select(PlanUpgrade)
        .where(PlanUpgrade.agency_id == agency_id, PlanUpgrade.status == UpgradeStatus.READY)
        .order_by(PlanUpgrade.id.desc())
        .limit(1)
    )
    if agency is None or upgrade is None or not agency.stripe_subscription_id:
        return None
    return ReadyUpgrade(
        upgrade_id=upgrade.id,
        agency_id=agency_id,
        subscription_id=agency.stripe_subscription_id,
        quantities={pool.seat_type: pool.purchased for pool in agency.pools},
        item_ids={pool.seat_type: pool.stripe_item_id for pool in agency.pools},
    )


def ready_agency_ids(session: Session, older_than: datetime) -> list[str]:
    """Upgrades whose charge has not happened yet (for the requeue sweep)."""
    return list(
        session.scalars(
            select(PlanUpgrade.agency_id)
            .where(PlanUpgrade.status == UpgradeStatus.READY, PlanUpgrade.created_at < older_than)
            .distinct()
        )
    )


@dataclass(frozen=True)
class ChargeOutcome:
    invoice_id: str | None
    invoice_status: str | None
    amount_paid: int
    amount_due: int
    currency: str | None
    decline_reason: str | None


def finish_upgrade(session: Session, upgrade_id: int, charge: ChargeOutcome) -> str:
    """Stripe ended the trial and charged (or tried to): tell the admins what happened."""
    upgrade = session.get(PlanUpgrade, upgrade_id, with_for_update=True)
    if upgrade is None or upgrade.status != UpgradeStatus.READY:
        return "already finished"
    agency = _locked_agency(session, upgrade.agency_id)
    upgrade.status = UpgradeStatus.DONE
    upgrade.completed_at = utcnow()
    upgrade.invoice_id = charge.invoice_id
    upgrade.amount_paid = charge.amount_paid
    upgrade.currency = charge.currency
    seats = {"base": upgrade.base, "voice": upgrade.voice}
    if charge.invoice_status == "paid" or charge.amount_due == 0:
        outbox.notify(
            session,
            NotificationKind.UPGRADE_CONFIRMED,
            f"upgrade_confirmed:{agency.id}:{upgrade.id}",
            agency.id,
            payload={
                "seats": seats,
                "amount_paid": charge.amount_paid,
                "currency": charge.currency,
                "invoice_id": charge.invoice_id,
            },
        )
        return "upgraded and paid"
    # Declined: the seats stay (nobody loses one); Stripe's dunning retries the invoice.
    # The same key as the invoice.payment_failed webhook's: one email whichever is first.
    agency.billing_attention = "payment_failed"
    outbox.notify(
        session,
        NotificationKind.PAYMENT_FAILED,
        f"payment_failed:{agency.id}:invoice:{charge.invoice_id}",
        agency.id,
        payload={
            "reason": charge.decline_reason,
            "amount_due": charge.amount_due,
            "currency": charge.currency,
            "cause": f"invoice:{charge.invoice_id}",
        },
    )
    return "upgraded; the first charge was declined"


def resume_paused(session: Session, agency_id: str) -> int | None:
    """A card was saved while the trial's end paused the subscription: resume it with the
    seats the agency holds (as an upgrade, so the same worker path charges it once)."""
    agency = _locked_agency(session, agency_id)
    if agency.billing_status != "paused" or agency.payment_method is None:
        return None
    ready = session.scalar(
        select(PlanUpgrade.id).where(
            PlanUpgrade.agency_id == agency_id, PlanUpgrade.status == UpgradeStatus.READY
        )
    )
    if ready is not None:
        return int(ready)
    pools = lock_pools(session, agency_id)
    upgrade = PlanUpgrade(
        agency_id=agency_id,
        base=pools[SeatType.BASE].purchased,
        voice=pools[SeatType.VOICE].purchased,
        status=UpgradeStatus.READY,
        request_key="resume",
        created_at=utcnow(),
    )
    session.add(upgrade)
    session.flush()
    return upgrade.id
