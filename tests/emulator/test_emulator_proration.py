"""Proration amounts, to the second, for each proration_behavior."""

from __future__ import annotations

from fractions import Fraction

import stripe
from emulator_support import Catalog

from stripe_emulator import StripeEmulator


def _expected(unit: int, qty: int, start: int, end: int, at: int) -> int:
    value = Fraction(unit * qty * (end - at), end - start)
    return int(value + Fraction(1, 2))


def _setup(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> tuple[stripe.Subscription, stripe.SubscriptionItem, int, int]:
    emulator.freeze_clock()
    sub = client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [{"price": catalog.base.id, "quantity": 2}, {"price": catalog.voice.id}],
        }
    )
    item = sub["items"].data[0]
    start, end = item.current_period_start, item.current_period_end
    emulator.advance(seconds=(end - start) // 3 + 17)  # some odd second inside the period
    return sub, item, start, end


def test_create_prorations_makes_pending_invoice_items(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub, item, start, end = _setup(client, catalog, emulator)
    at = emulator.now()
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "quantity": 5}],
            "proration_behavior": "create_prorations",
        },
    )
    assert updated["items"].data[0].quantity == 5
    assert updated.latest_invoice == sub.latest_invoice  # nothing invoiced now
    pending = client.v1.invoice_items.list(
        params={"customer": catalog.customer.id, "pending": True}
    ).data
    amounts = sorted(ii.amount for ii in pending)
    assert amounts == [-_expected(3000, 2, start, end, at), _expected(3000, 5, start, end, at)]
    assert all(ii.proration for ii in pending)
    assert all(ii.period.start == at and ii.period.end == end for ii in pending)
    # the next invoice picks them up
    invoice = client.v1.invoices.create(
        params={"customer": catalog.customer.id, "subscription": sub.id}
    )
    assert invoice.total == sum(amounts)
    assert len(invoice.lines.data) == 2
    paid = client.v1.invoices.pay(invoice.id)
    assert paid.status == "paid"
    assert client.v1.invoice_items.list(params={"pending": True}).data == []


def test_always_invoice_charges_now(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub, item, start, end = _setup(client, catalog, emulator)
    at = emulator.now()
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "quantity": 3}],
            "proration_behavior": "always_invoice",
            "expand": ["latest_invoice"],
        },
    )
    invoice = updated.latest_invoice
    expected = _expected(3000, 3, start, end, at) - _expected(3000, 2, start, end, at)
    assert invoice.amount_due == expected
    assert invoice.amount_paid == expected
    assert invoice.status == "paid"
    assert invoice.billing_reason == "subscription_update"
    descriptions = sorted(line.description for line in invoice.lines.data)
    assert descriptions[0].startswith("Remaining time on 3 \u00d7 Seats after")
    assert descriptions[1].startswith("Unused time on 2 \u00d7 Seats after")


def test_proration_date_is_honoured(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub, item, start, end = _setup(client, catalog, emulator)
    at = start + 1000
    client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": item.id, "quantity": 4}], "proration_date": at},
    )
    pending = client.v1.invoice_items.list(params={"pending": True}).data
    assert sorted(ii.amount for ii in pending) == [
        -_expected(3000, 2, start, end, at),
        _expected(3000, 4, start, end, at),
    ]


def test_none_changes_quantity_without_money(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    _, item, _, _ = _setup(client, catalog, emulator)
    invoices_before = len(client.v1.invoices.list().data)
    updated = client.v1.subscription_items.update(
        item.id, params={"quantity": 9, "proration_behavior": "none"}
    )
    assert updated.quantity == 9
    assert client.v1.invoice_items.list(params={"pending": True}).data == []
    assert len(client.v1.invoices.list().data) == invoices_before


def test_subscription_items_update_prorates_too(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub, _, start, end = _setup(client, catalog, emulator)
    voice = sub["items"].data[1]
    at = emulator.now()
    client.v1.subscription_items.update(voice.id, params={"quantity": 2})
    pending = client.v1.invoice_items.list(params={"pending": True}).data
    assert sorted(ii.amount for ii in pending) == [
        -_expected(1000, 1, start, end, at),
        _expected(1000, 2, start, end, at),
    ]


def test_create_preview_matches_the_real_update(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub, item, _, _ = _setup(client, catalog, emulator)
    preview = client.v1.invoices.create_preview(
        params={
            "customer": catalog.customer.id,
            "subscription": sub.id,
            "subscription_details": {
                "items": [{"id": item.id, "quantity": 6}],
                "proration_behavior": "always_invoice",
            },
        }
    )
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "quantity": 6}],
            "proration_behavior": "always_invoice",
            "expand": ["latest_invoice"],
        },
    )
    assert preview.amount_due == updated.latest_invoice.amount_due
    # a preview is not stored
    assert client.v1.invoice_items.list(params={"pending": True}).data == []
    upcoming = client.v1.invoices.create_preview(params={"subscription": sub.id})
    assert upcoming.amount_due == 6 * 3000 + 1000  # next period at the new quantity
