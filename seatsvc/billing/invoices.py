"""Applying an invoice, as re-fetched from Stripe, to the agency: flags and decline emails."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from seatsvc.billing import drift
from seatsvc.models import Agency, Notification, StripeEvent
from seatsvc.services import outbox
from seatsvc.types import NotificationKind, StripeEventStatus

INVOICE_TYPES = ("invoice.paid", "invoice.payment_failed")


def apply_invoice(
    session: Session,
    agency_id: str,
    event_id: str,
    event_type: str,
    event_created: datetime,
    invoice: Mapping[str, Any],
) -> drift.InvoiceOutcome:
    """Billing attention from an invoice as re-fetched now; an email per failed invoice."""
    agency = session.get(Agency, agency_id, with_for_update=True)
    assert agency is not None, agency_id
    newer = session.scalar(
        select(func.count())
        .select_from(StripeEvent)
        .where(
            StripeEvent.agency_id == agency_id,
            StripeEvent.type.in_(INVOICE_TYPES),
            StripeEvent.status == StripeEventStatus.PROCESSED,
            StripeEvent.created > event_created,
            StripeEvent.id != event_id,
        )
    )
    outcome = drift.decide_invoice(event_type, str(invoice.get("status")), bool(newer))
    agency.billing_attention = drift.attention_after_invoice(agency.billing_attention, outcome)
    if outcome == drift.InvoiceOutcome.FLAG and not _told_since(session, agency_id, invoice):
        outbox.notify(
            session,
            NotificationKind.PAYMENT_FAILED,
            f"payment_failed:{agency_id}:invoice:{invoice['id']}",
            agency_id,
            payload={
                key: invoice.get(key)
                for key in ("amount_due", "currency", "hosted_invoice_url", "next_payment_attempt")
                if invoice.get(key) is not None
            }
            | {"cause": f"invoice:{invoice['id']}"},
        )
    return outcome


def _told_since(session: Session, agency_id: str, invoice: Mapping[str, Any]) -> bool:
    """The billing worker already emailed about this decline (it charged the invoice itself
    and keys its email by day, not by invoice): one email per decline, not two."""
    created = datetime.fromtimestamp(int(invoice.get("created") or 0), UTC)
    found = session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.agency_id == agency_id,
            Notification.kind == NotificationKind.PAYMENT_FAILED,
            Notification.created_at >= created,
            # Not ours (`…:invoice:in_…`); the worker keys by day (`…:invoice:<date>:<n>`).
            ~Notification.dedupe_key.like(f"payment_failed:{agency_id}:invoice:in%"),
        )
    )
    return bool(found)
