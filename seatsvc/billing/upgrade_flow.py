"""Trial to paid with Stripe: adopt a saved card, end the trial and charge, remind.

Each step runs under the agency's billing lock (one writer per subscription, like
the sync and the webhook healing), calls Stripe with no transaction open, and
records the answer in one short transaction. Every try first reads the
subscription as Stripe holds it now and chooses its step from that, so a write
that went through behind a 5xx or a lost answer is seen, not made again; each
try's writes therefore carry keys of their own (Stripe would replay a saved 500
under an old key forever, DESIGN.md), and the upgrade row's status makes a
repeated webhook or a re-run job a no-op once the charge is recorded.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from seatsvc.billing import sync
from seatsvc.billing.locks import agency_lock
from seatsvc.billing.payments import CompletedSetup, PaymentsGateway, UpgradeCharge
from seatsvc.billing.reconcile import subscription_of
from seatsvc.billing.upgrade_rules import StripeStep, stripe_step
from seatsvc.models import Agency, utcnow
from seatsvc.runtime import Runtime
from seatsvc.services import outbox, upgrades
from seatsvc.types import NotificationKind

log = logging.getLogger(__name__)


def adopt_setup(
    rt: Runtime, payments: PaymentsGateway, agency_id: str, setup: CompletedSetup
) -> str:
    """A setup-mode Checkout Session completed: its card pays the invoices from now on;
    an upgrade waiting for it is purchased and charged; a paused trial resumes."""
    if setup.status != "complete" or setup.card is None:
        return f"checkout session {setup.status}: nothing to adopt"
    card = setup.card
    with agency_lock(rt.redis, agency_id, rt.config.billing_lock_seconds):
        customer_id, subscription_id = rt.transaction(lambda s: _stripe_ids(s, agency_id))
        if customer_id is None or customer_id != setup.customer_id:
            return "the session belongs to another customer"
        # Setting the same default twice is harmless: a fresh key per try, so a saved 5xx
        # is never replayed to the next one.
        payments.make_default(
            customer_id,
            subscription_id,
            card.id,
            f"seatsvc:{agency_id}:default-card:{card.id}:{uuid.uuid4().hex[:16]}",
        )
        upgrade_id = rt.transaction(
            lambda s: upgrades.record_card(s, agency_id, card.as_row(), setup.id)
        )
        if upgrade_id is None:
            upgrade_id = rt.transaction(lambda s: upgrades.resume_paused(s, agency_id))
    note = f"card {card.brand} {card.last4} is the default"
    if upgrade_id is not None:
        note += "; " + charge_ready_upgrade(rt, payments, agency_id)
    return note


def refresh_card(rt: Runtime, payments: PaymentsGateway, agency_id: str) -> str:
    """The customer changed (a card replaced in the customer portal, ...): show the default
    card Stripe holds now; a card arriving while the trial's end paused billing resumes it."""
    with agency_lock(rt.redis, agency_id, rt.config.billing_lock_seconds):
        customer_id, _subscription_id = rt.transaction(lambda s: _stripe_ids(s, agency_id))
        if customer_id is None:
            return "no customer yet"
        card = payments.default_card(customer_id)  # now, not the event's copy
        row = card.as_row() if card is not None else None
        rt.transaction(lambda s: upgrades.record_card(s, agency_id, row, None))
        upgrade_id = rt.transaction(lambda s: upgrades.resume_paused(s, agency_id))
    note = f"default card {card.brand} {card.last4}" if card is not None else "no default card"
    if upgrade_id is not None:
        note += "; " + charge_ready_upgrade(rt, payments, agency_id)
    return note


def charge_ready_upgrade(rt: Runtime, payments: PaymentsGateway, agency_id: str) -> str:
    """End the trial (or resume the paused subscription) with the purchased seats; Stripe
    charges the first invoice now. Safe to repeat: a finished upgrade is not READY."""
    with agency_lock(rt.redis, agency_id, rt.config.billing_lock_seconds):
        ready = rt.transaction(lambda s: upgrades.ready_upgrade(s, agency_id))
        if ready is None:
            return "no upgrade waiting to be charged"
        seats = "-".join(f"{seat}{ready.quantities[seat]}" for seat in sorted(ready.quantities))
        # This try's own keys: the step below is chosen from Stripe's state read just now.
        token = uuid.uuid4().hex[:16]
        key = f"seatsvc:{agency_id}:upgrade:{ready.upgrade_id}:{seats}:{token}"
        current = payments.gateway.get_subscription(ready.subscription_id)
        match stripe_step(current.status):
            case StripeStep.END_TRIAL:
                charge = payments.end_trial_with(
                    ready.subscription_id, ready.item_ids, ready.quantities, key
                )
            case StripeStep.RESUME:
                # Seats first (nothing is billed while paused), then one resumption invoice.
                payments.set_items(
                    ready.subscription_id, ready.item_ids, ready.quantities, "none", f"{key}:items"
                )
                charge = payments.resume(ready.subscription_id, f"{key}:resume")
            case StripeStep.SET_ITEMS:
                charge = payments.set_items(
                    ready.subscription_id, ready.item_ids, ready.quantities, "always_invoice", key
                )
            case StripeStep.NONE:
                return f"subscription is {current.status}: the upgrade cannot be charged"
        return rt.transaction(lambda s: _record_charge(s, agency_id, ready.upgrade_id, charge))


def _record_charge(session: Session, agency_id: str, upgrade_id: int, charge: UpgradeCharge) -> str:
    """What Stripe now bills becomes `billed` (the outbox settles), and the upgrade ends."""
    plan = sync.plan_sync(session, agency_id)
    if plan is not None:
        sync.record_synced(session, plan, charge.subscription, utcnow(), sent_update=False)
    outcome = upgrades.ChargeOutcome(
        invoice_id=charge.invoice_id,
        invoice_status=charge.invoice_status,
        amount_paid=charge.amount_paid,
        amount_due=charge.amount_due,
        currency=charge.currency,
        decline_reason=charge.decline_reason,
    )
    return upgrades.finish_upgrade(session, upgrade_id, outcome)


def remind_trial_end(rt: Runtime, payments: PaymentsGateway, agency_id: str) -> str:
    """Stripe's `trial_will_end` (three days before): one reminder per trial, with the
    end date and what to do, unless the trial is over or a card is already on file."""
    subscription_id, _status = rt.transaction(lambda s: subscription_of(s, agency_id))
    if subscription_id is None:
        return "no subscription yet"
    current = payments.gateway.get_subscription(subscription_id)  # now, not the event's copy
    if current.status != "trialing" or current.trial_end is None:
        return f"subscription is {current.status}: no reminder"
    trial_end = current.trial_end
    return rt.transaction(lambda s: _remind(s, agency_id, subscription_id, trial_end))


def _remind(session: Session, agency_id: str, subscription_id: str, trial_end: datetime) -> str:
    agency = session.get(Agency, agency_id)
    if agency is None:
        return "unknown agency"
    outbox.notify(
        session,
        NotificationKind.TRIAL_WILL_END,
        f"trial_will_end:{agency_id}:{subscription_id}:{int(trial_end.timestamp())}",
        agency_id,
        payload={
            "trial_ends_at": trial_end.astimezone(UTC).isoformat(),
            "has_payment_method": agency.payment_method is not None,
        },
    )
    return f"reminder owed: the trial ends {trial_end.isoformat()}"


def _stripe_ids(session: Session, agency_id: str) -> tuple[str | None, str | None]:
    agency = session.get(Agency, agency_id)
    if agency is None:
        return None, None
    return agency.stripe_customer_id, agency.stripe_subscription_id
