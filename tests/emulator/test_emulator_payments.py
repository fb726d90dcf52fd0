"""Payment failures: 402 with error_if_incomplete, pending updates with
pending_if_incomplete (applied when paid, expired by the clock), test cards."""

from __future__ import annotations

import pytest
import stripe
from emulator_support import Catalog

from stripe_emulator import StripeEmulator


def _failing_customer(client: stripe.StripeClient) -> stripe.Customer:
    return client.v1.customers.create(
        params={"invoice_settings": {"default_payment_method": "pm_card_chargeCustomerFail"}}
    )


def test_declined_card_cannot_be_attached(client: stripe.StripeClient) -> None:
    customer = client.v1.customers.create()
    with pytest.raises(stripe.CardError) as info:
        client.v1.payment_methods.attach("pm_card_chargeDeclined", params={"customer": customer.id})
    assert info.value.http_status == 402
    assert info.value.code == "card_declined"


def test_error_if_incomplete_on_create_is_402_and_creates_nothing(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    customer = _failing_customer(client)
    with pytest.raises(stripe.CardError) as info:
        client.v1.subscriptions.create(
            params={
                "customer": customer.id,
                "items": [{"price": catalog.base.id}],
                "payment_behavior": "error_if_incomplete",
            }
        )
    assert info.value.http_status == 402
    assert info.value.error is not None and info.value.error.type == "card_error"
    assert client.v1.subscriptions.list(params={"status": "all"}).data == []


def test_allow_incomplete_leaves_subscription_incomplete(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    customer = _failing_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog.base.id}]}
    )
    assert sub.status == "incomplete"
    failed = client.v1.events.list(params={"type": "invoice.payment_failed"}).data
    assert len(failed) == 1
    # paying with a good card activates it
    paid = client.v1.invoices.pay(
        str(sub.latest_invoice), params={"payment_method": "pm_card_visa"}
    )
    assert paid.status == "paid"
    assert client.v1.subscriptions.retrieve(sub.id).status == "active"


def _sub_then_card_fails(
    client: stripe.StripeClient, catalog: Catalog
) -> tuple[stripe.Subscription, stripe.SubscriptionItem]:
    sub = client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [{"price": catalog.base.id, "quantity": 2}],
        }
    )
    client.v1.customers.update(
        catalog.customer.id,
        params={"invoice_settings": {"default_payment_method": "pm_card_chargeCustomerFail"}},
    )
    return sub, sub["items"].data[0]


def test_error_if_incomplete_update_is_402_and_changes_nothing(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    sub, item = _sub_then_card_fails(client, catalog)
    with pytest.raises(stripe.CardError) as info:
        client.v1.subscriptions.update(
            sub.id,
            params={
                "items": [{"id": item.id, "quantity": 3}],
                "proration_behavior": "always_invoice",
                "payment_behavior": "error_if_incomplete",
            },
        )
    assert info.value.code == "card_declined"
    assert client.v1.subscription_items.retrieve(item.id).quantity == 2
    assert client.v1.invoice_items.list(params={"pending": True}).data == []


def test_pending_if_incomplete_then_paid_applies_update(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    sub, item = _sub_then_card_fails(client, catalog)
    updated = client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "quantity": 5}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
            "expand": ["latest_invoice"],
        },
    )
    assert updated["items"].data[0].quantity == 2  # unchanged until paid
    assert updated.pending_update is not None
    assert updated.pending_update.subscription_items[0].quantity == 5
    assert updated.pending_update.expires_at > updated.created
    invoice = updated.latest_invoice
    assert invoice.status == "open"
    change = client.v1.events.list(params={"type": "customer.subscription.updated"}).data[0]
    assert change.data.previous_attributes["pending_update"] is None

    client.v1.invoices.pay(invoice.id, params={"payment_method": "pm_card_visa"})
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None
    assert after["items"].data[0].quantity == 5
    applied = client.v1.events.list(
        params={"type": "customer.subscription.pending_update_applied"}
    ).data
    assert [e.data.object.id for e in applied] == [sub.id]


def test_pending_update_expires_with_the_clock(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub, item = _sub_then_card_fails(client, catalog)
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [{"id": item.id, "quantity": 5}],
            "proration_behavior": "always_invoice",
            "payment_behavior": "pending_if_incomplete",
        },
    )
    emulator.advance(seconds=23 * 3600 + 1)
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None
    assert after["items"].data[0].quantity == 2
    expired = client.v1.events.list(
        params={"type": "customer.subscription.pending_update_expired"}
    ).data
    assert len(expired) == 1


def test_new_update_replaces_a_pending_one_and_void_cancels_it(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    sub, item = _sub_then_card_fails(client, catalog)
    pending = {
        "proration_behavior": "always_invoice",
        "payment_behavior": "pending_if_incomplete",
    }
    first = client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": item.id, "quantity": 5}], **pending},  # type: ignore[typeddict-item]
    )
    second = client.v1.subscriptions.update(
        sub.id,
        params={"items": [{"id": item.id, "quantity": 7}], **pending},  # type: ignore[typeddict-item]
    )
    assert second.pending_update.subscription_items[0].quantity == 7
    assert client.v1.invoices.retrieve(str(first.latest_invoice)).status == "void"
    voided = client.v1.invoices.void_invoice(str(second.latest_invoice))
    assert voided.status == "void"
    after = client.v1.subscriptions.retrieve(sub.id)
    assert after.pending_update is None
    assert after["items"].data[0].quantity == 2


def test_unpaid_first_invoice_expires_the_subscription(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    customer = _failing_customer(client)
    sub = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": catalog.base.id}]}
    )
    with pytest.raises(stripe.InvalidRequestError):  # incomplete: metadata only
        client.v1.subscriptions.update(
            sub.id, params={"items": [{"id": sub["items"].data[0].id, "quantity": 2}]}
        )
    client.v1.subscriptions.update(sub.id, params={"metadata": {"ok": "yes"}})
    emulator.advance(seconds=23 * 3600 + 1)
    expired = client.v1.subscriptions.retrieve(sub.id)
    assert expired.status == "incomplete_expired"
    assert client.v1.invoices.retrieve(str(sub.latest_invoice)).status == "void"
