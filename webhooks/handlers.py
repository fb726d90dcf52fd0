"""Stripe event handlers, run by a worker (never in the request that received the event).

One table, keyed by event type: the only list of the types the service uses.
Subscription events are a nudge: the handler re-fetches the subscription from
Stripe and compares it with the ledger under the agency's billing lock
(`seatsvc.billing.reconcile.heal_agency`), so duplicates and any delivery
order end in the same ledger, and an old event processed late cannot move it
backwards. Invoice events re-fetch the invoice; one older than an invoice event
already applied to the agency is ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from seatsvc.billing import invoices, reconcile
from seatsvc.billing.gateway import StripeGateway
from seatsvc.metrics import WEBHOOK_EVENTS
from seatsvc.runtime import Runtime
from seatsvc.types import StripeEventStatus
from webhooks import events, payment_handlers
from webhooks.stripe_objects import customer_id, invoice_subscription_id, text_or_none


@dataclass(frozen=True)
class Outcome:
    status: StripeEventStatus
    agency_id: str | None
    note: str


Handler = Callable[[Runtime, StripeGateway, events.EventInfo], Outcome]


def handle_event(rt: Runtime, gateway: StripeGateway, event_id: str, force: bool = False) -> str:
    """Handle one stored event; `force` re-runs one already handled (safe: idempotent).

    A failure marks the row `failed` and re-raises, so rq retries the job.
    """
    info = rt.transaction(lambda s: events.start_attempt(s, event_id, force))
    if info is None:
        return "nothing to do (unknown, or already handled)"
    handler = HANDLERS.get(info.type)
    try:
        outcome = (
            handler(rt, gateway, info)
            if handler is not None
            else Outcome(StripeEventStatus.IGNORED, None, "event type not used")
        )
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        rt.transaction(lambda s: events.fail(s, event_id, reason))
        WEBHOOK_EVENTS.labels(type=info.type, result="failed").inc()
        raise
    WEBHOOK_EVENTS.labels(type=info.type, result=str(outcome.status)).inc()
    rt.transaction(
        lambda s: events.finish(s, event_id, outcome.status, outcome.agency_id, outcome.note)
    )
    return f"{outcome.status}: {outcome.note}"


def _subscription_event(rt: Runtime, gateway: StripeGateway, info: events.EventInfo) -> Outcome:
    obj = info.object
    agency_id = rt.transaction(
        lambda s: reconcile.find_agency_id(s, text_or_none(obj.get("id")), customer_id(obj))
    )
    if agency_id is None:
        return Outcome(StripeEventStatus.IGNORED, None, "unknown customer and subscription")
    applied = reconcile.heal_agency(rt, gateway, agency_id, cause=info.id, actor="stripe")
    return Outcome(StripeEventStatus.PROCESSED, agency_id, reconcile.describe(applied))


def _invoice_event(rt: Runtime, gateway: StripeGateway, info: events.EventInfo) -> Outcome:
    obj = info.object
    agency_id = rt.transaction(
        lambda s: reconcile.find_agency_id(s, invoice_subscription_id(obj), customer_id(obj))
    )
    if agency_id is None:
        return Outcome(StripeEventStatus.IGNORED, None, "unknown customer and subscription")
    invoice = gateway.retrieve_invoice(str(obj["id"]))  # its state now, not the event's
    outcome = rt.transaction(
        lambda s: invoices.apply_invoice(s, agency_id, info.id, info.type, info.created, invoice)
    )
    status = StripeEventStatus.IGNORED if outcome == "stale" else StripeEventStatus.PROCESSED
    return Outcome(status, agency_id, f"invoice {invoice['id']} {invoice.get('status')}: {outcome}")


HANDLERS: dict[str, Handler] = {
    "customer.subscription.created": _subscription_event,
    "customer.subscription.updated": _subscription_event,
    "customer.subscription.deleted": _subscription_event,
    "customer.subscription.pending_update_applied": _subscription_event,
    "customer.subscription.pending_update_expired": _subscription_event,
    **dict.fromkeys(invoices.INVOICE_TYPES, _invoice_event),
    **dict.fromkeys(payment_handlers.SUBSCRIPTION_TYPES, _subscription_event),
}


def _payment_handler(handler: payment_handlers.PaymentHandler) -> Handler:
    def run(rt: Runtime, gateway: StripeGateway, info: events.EventInfo) -> Outcome:
        return Outcome(*handler(rt, gateway, info))

    return run


HANDLERS.update(
    {kind: _payment_handler(handler) for kind, handler in payment_handlers.HANDLERS.items()}
)
HANDLED_TYPES = frozenset(HANDLERS)
