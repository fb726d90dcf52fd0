"""Stripe events about payment details and the trial's end (see `webhooks.handlers`).

Like every handler, each re-fetches what the event names instead of trusting the
payload: the Checkout Session (with its SetupIntent's card) or the subscription.
"""

from __future__ import annotations

from collections.abc import Callable

from seatsvc.billing import reconcile, upgrade_flow
from seatsvc.billing.gateway import StripeGateway
from seatsvc.billing.payments import PaymentsGateway
from seatsvc.runtime import Runtime
from seatsvc.services import upgrades
from seatsvc.types import StripeEventStatus
from webhooks import events
from webhooks.stripe_objects import customer_id, text_or_none

# (status, agency id, note): `webhooks.handlers` turns it into its Outcome.
Result = tuple[StripeEventStatus, str | None, str]
PaymentHandler = Callable[[Runtime, StripeGateway, events.EventInfo], Result]


def checkout_completed(rt: Runtime, gateway: StripeGateway, info: events.EventInfo) -> Result:
    obj = info.object
    if obj.get("mode") != "setup":
        return StripeEventStatus.IGNORED, None, "not a setup-mode session"
    agency_id = rt.transaction(lambda s: reconcile.find_agency_id(s, None, customer_id(obj)))
    if agency_id is None:
        return StripeEventStatus.IGNORED, None, "unknown customer"
    payments = PaymentsGateway(gateway)
    setup = payments.retrieve_setup(str(obj["id"]))  # its state now, not the event's
    note = upgrade_flow.adopt_setup(rt, payments, agency_id, setup)
    return StripeEventStatus.PROCESSED, agency_id, note


def checkout_expired(rt: Runtime, gateway: StripeGateway, info: events.EventInfo) -> Result:
    obj = info.object
    agency_id = rt.transaction(lambda s: reconcile.find_agency_id(s, None, customer_id(obj)))
    if agency_id is None:
        return StripeEventStatus.IGNORED, None, "unknown customer"
    session = PaymentsGateway(gateway).retrieve_setup(str(obj["id"]))  # still expired?
    if session.status != "expired":
        return StripeEventStatus.IGNORED, agency_id, f"checkout session is {session.status}"
    found = rt.transaction(lambda s: upgrades.checkout_expired(s, session.id))
    note = "the waiting upgrade will get a new link" if found else "no upgrade waited for it"
    return StripeEventStatus.PROCESSED, agency_id, note


def trial_will_end(rt: Runtime, gateway: StripeGateway, info: events.EventInfo) -> Result:
    obj = info.object
    agency_id = rt.transaction(
        lambda s: reconcile.find_agency_id(s, text_or_none(obj.get("id")), customer_id(obj))
    )
    if agency_id is None:
        return StripeEventStatus.IGNORED, None, "unknown customer and subscription"
    note = upgrade_flow.remind_trial_end(rt, PaymentsGateway(gateway), agency_id)
    return StripeEventStatus.PROCESSED, agency_id, note


def customer_updated(rt: Runtime, gateway: StripeGateway, info: events.EventInfo) -> Result:
    agency_id = rt.transaction(
        lambda s: reconcile.find_agency_id(s, None, text_or_none(info.object.get("id")))
    )
    if agency_id is None:
        return StripeEventStatus.IGNORED, None, "unknown customer"
    note = upgrade_flow.refresh_card(rt, PaymentsGateway(gateway), agency_id)
    return StripeEventStatus.PROCESSED, agency_id, note


HANDLERS: dict[str, PaymentHandler] = {
    "checkout.session.completed": checkout_completed,
    "customer.updated": customer_updated,
    "checkout.session.expired": checkout_expired,
    "customer.subscription.trial_will_end": trial_will_end,
}
# Subscription status changes that the generic subscription handler heals.
SUBSCRIPTION_TYPES = ("customer.subscription.paused", "customer.subscription.resumed")
