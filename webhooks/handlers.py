"""Stripe event handlers, run by a worker (never in the request that received the event).

An explicit `match` on the event type. Subscription events are treated as a
nudge: the handler re-fetches the subscription from Stripe and compares it with
the ledger under the agency's billing lock (the one the billing sync holds), so
duplicates and any delivery order end in the same ledger, and an old event
processed late cannot move it backwards. Invoice events re-fetch the invoice,
and one older than an invoice event already applied to the agency is ignored.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seatsvc.billing.gateway import StripeGateway
from seatsvc.metrics import WEBHOOK_EVENTS
from seatsvc.runtime import Runtime
from seatsvc.types import StripeEventStatus
from webhooks import reads, store
from workers import billing

log = logging.getLogger(__name__)

SUBSCRIPTION_TYPES = frozenset(
    {
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.pending_update_applied",
        "customer.subscription.pending_update_expired",
    }
)
INVOICE_TYPES = frozenset(store.INVOICE_TYPES)
HANDLED_TYPES = SUBSCRIPTION_TYPES | INVOICE_TYPES


@dataclass(frozen=True)
class Outcome:
    status: StripeEventStatus
    agency_id: str | None
    note: str


def handle_event(rt: Runtime, gateway: StripeGateway, event_id: str, force: bool = False) -> str:
    """Handle one stored event; `force` re-runs one already handled (safe: idempotent).

    A failure marks the row `failed` and re-raises, so rq retries the job.
    """
    info = rt.transaction(lambda s: store.start_attempt(s, event_id, force))
    if info is None:
        return "nothing to do (unknown, or already handled)"
    try:
        outcome = dispatch(rt, gateway, info)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        rt.transaction(lambda s: store.fail(s, event_id, reason))
        WEBHOOK_EVENTS.labels(type=info.type, result="failed").inc()
        raise
    WEBHOOK_EVENTS.labels(type=info.type, result=str(outcome.status)).inc()
    rt.transaction(
        lambda s: store.finish(s, event_id, outcome.status, outcome.agency_id, outcome.note)
    )
    return f"{outcome.status}: {outcome.note}"


def dispatch(rt: Runtime, gateway: StripeGateway, info: store.EventInfo) -> Outcome:
    match info.type:
        case (
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted"
            | "customer.subscription.pending_update_applied"
            | "customer.subscription.pending_update_expired"
        ):
            return _subscription_event(rt, gateway, info)
        case "invoice.paid" | "invoice.payment_failed":
            return _invoice_event(rt, gateway, info)
        case _:
            return Outcome(StripeEventStatus.IGNORED, None, "event type not used")


def _subscription_event(rt: Runtime, gateway: StripeGateway, info: store.EventInfo) -> Outcome:
    obj = info.object
    agency_id = rt.transaction(
        lambda s: store.find_agency_id(s, _str(obj.get("id")), _customer(obj))
    )
    if agency_id is None:
        return Outcome(StripeEventStatus.IGNORED, None, "unknown customer and subscription")
    applied = reconcile_agency(rt, gateway, agency_id, cause=info.id, actor="stripe")
    return Outcome(StripeEventStatus.PROCESSED, agency_id, describe(applied))


def _invoice_event(rt: Runtime, gateway: StripeGateway, info: store.EventInfo) -> Outcome:
    obj = info.object
    agency_id = rt.transaction(
        lambda s: store.find_agency_id(s, _invoice_subscription(obj), _customer(obj))
    )
    if agency_id is None:
        return Outcome(StripeEventStatus.IGNORED, None, "unknown customer and subscription")
    invoice = reads.retrieve_invoice(gateway, str(obj["id"]))  # its state now, not the event's
    outcome = rt.transaction(lambda s: store.apply_invoice(s, agency_id, info, invoice))
    status = StripeEventStatus.IGNORED if outcome == "stale" else StripeEventStatus.PROCESSED
    return Outcome(status, agency_id, f"invoice {invoice['id']} {invoice.get('status')}: {outcome}")


def reconcile_agency(
    rt: Runtime,
    gateway: StripeGateway,
    agency_id: str,
    cause: str,
    actor: str,
    counter: reads.CallCounter | None = None,
) -> store.Applied | None:
    """Compare one agency with its subscription as Stripe holds it now, and heal.

    None when there is no subscription to compare yet (the billing worker
    provisions or links it first: a sync is enqueued).
    """
    with billing.agency_lock(rt, agency_id):
        subscription_id, _status = rt.transaction(lambda s: store.subscription_of(s, agency_id))
        if subscription_id is None:
            billing.enqueue_sync(rt.redis, agency_id)
            return None
        snapshot = reads.retrieve_subscription(gateway, subscription_id, counter)
        applied = rt.transaction(
            lambda s: store.apply_subscription(s, agency_id, snapshot, cause, actor)
        )
    if applied.adopted:
        log.info("agency %s: Stripe quantities adopted %s (%s)", agency_id, applied.adopted, cause)
    return applied


def describe(applied: store.Applied | None) -> str:
    if applied is None:
        return "no subscription yet: billing sync enqueued"
    parts = [f"status {applied.status}"]
    if applied.adopted:
        parts.append(f"adopted {applied.adopted}")
    if applied.confirmed:
        parts.append(f"confirmed {applied.confirmed}")
    if applied.sync:
        parts.append("local change pending: billing sync enqueued")
    if applied.over_capacity:
        parts.append(f"over capacity {applied.over_capacity}")
    return "; ".join(parts)


def _str(value: Any) -> str | None:
    return str(value) if value else None


def _customer(obj: Mapping[str, Any]) -> str | None:
    customer = obj.get("customer")
    if isinstance(customer, Mapping):
        return _str(customer.get("id"))
    return _str(customer)


def _invoice_subscription(obj: Mapping[str, Any]) -> str | None:
    """`parent.subscription_details.subscription` (API 2025+), else the older `subscription`."""
    parent = obj.get("parent") or {}
    details = parent.get("subscription_details") if isinstance(parent, Mapping) else None
    if isinstance(details, Mapping) and details.get("subscription"):
        return _str(details["subscription"])
    return _str(obj.get("subscription"))
