"""Invoices and invoice items by hand; trial_end and default_incomplete on create."""

from __future__ import annotations

import pytest
import stripe
from emulator_support import Catalog

from stripe_emulator import StripeEmulator


def test_manual_invoice_flow(client: stripe.StripeClient, catalog: Catalog) -> None:
    item = client.v1.invoice_items.create(
        params={
            "customer": catalog.customer.id,
            "amount": 1234,
            "currency": "usd",
            "description": "setup fee",
        }
    )
    assert item.invoice is None
    excluded = client.v1.invoices.create(params={"customer": catalog.customer.id})
    assert excluded.lines.data == []  # Stripe's default: pending items excluded
    draft = client.v1.invoices.create(
        params={"customer": catalog.customer.id, "pending_invoice_items_behavior": "include"}
    )
    assert draft.status == "draft"
    assert draft.amount_due == 1234
    assert client.v1.invoice_items.retrieve(item.id).invoice == draft.id
    finalized = client.v1.invoices.finalize_invoice(draft.id)
    assert finalized.status == "open"
    assert finalized.number is not None and finalized.number.endswith("-0001")
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoices.finalize_invoice(draft.id)
    paid = client.v1.invoices.pay(draft.id)
    assert paid.status == "paid" and paid.amount_paid == 1234
    lines = client.v1.invoices.line_items.list(draft.id).data
    assert [line.amount for line in lines] == [1234]
    listed = client.v1.invoices.list(params={"customer": catalog.customer.id, "status": "paid"})
    assert [i.id for i in listed.data] == [draft.id]
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.invoice_items.delete(item.id)  # already on an invoice


def test_pay_declined_is_402_and_payment_failed_event(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    client.v1.invoice_items.create(
        params={"customer": catalog.customer.id, "amount": 500, "currency": "usd"}
    )
    invoice = client.v1.invoices.create(
        params={"customer": catalog.customer.id, "pending_invoice_items_behavior": "include"}
    )
    with pytest.raises(stripe.CardError) as info:
        client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_chargeDeclined"})
    assert info.value.http_status == 402
    still = client.v1.invoices.retrieve(invoice.id)
    assert still.status == "open"
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert [e.data.object.id for e in failed] == []  # declined at attach: no charge made
    client.v1.customers.update(
        catalog.customer.id,
        params={"invoice_settings": {"default_payment_method": "pm_card_chargeCustomerFail"}},
    )
    with pytest.raises(stripe.CardError):
        client.v1.invoices.pay(invoice.id)
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert [e.data.object.id for e in failed] == [invoice.id]
    assert client.v1.invoices.retrieve(invoice.id).attempt_count == 1


def test_trial_end_timestamp(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    ends = emulator.now() + 3 * 86400
    sub = client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [{"price": catalog.base.id}],
            "trial_end": ends,
        }
    )
    assert (sub.status, sub.trial_end) == ("trialing", ends)
    assert sub["items"].data[0].current_period_end == ends
    emulator.advance(to=ends)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def test_default_incomplete_waits_for_payment(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    sub = client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [{"price": catalog.base.id}],
            "payment_behavior": "default_incomplete",
            "expand": ["latest_invoice"],
        }
    )
    assert sub.status == "incomplete"
    assert sub.latest_invoice.status == "open"
    assert sub.latest_invoice.attempt_count == 0
    client.v1.invoices.pay(sub.latest_invoice.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"
