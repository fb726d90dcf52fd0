"""Subscriptions with several items, trials, cancel, lists with pagination, expand."""

from __future__ import annotations

import pytest
import stripe
from emulator_support import Catalog, Raw

from stripe_emulator import StripeEmulator


def _subscribe(
    client: stripe.StripeClient, catalog: Catalog, **extra: object
) -> stripe.Subscription:
    params: dict[str, object] = {
        "customer": catalog.customer.id,
        "items": [
            {"price": catalog.base.id, "quantity": 3},
            {"price": catalog.voice.id, "quantity": 1},
        ],
        **extra,
    }
    return client.v1.subscriptions.create(params=params)  # type: ignore[arg-type]


def test_multi_item_subscription_is_charged_for_every_item(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    sub = _subscribe(client, catalog, expand=["latest_invoice", "items.data.price.product"])
    assert sub.status == "active"
    items = sub["items"].data
    assert [(i.price.lookup_key, i.quantity) for i in items] == [
        ("base_monthly", 3),
        ("voice_monthly", 1),
    ]
    assert items[0].price.product.name == "Seats"
    invoice = sub.latest_invoice
    assert invoice.status == "paid"
    assert invoice.amount_paid == 3 * 3000 + 1000
    assert invoice.billing_reason == "subscription_create"
    assert items[0].current_period_end > items[0].current_period_start


def test_prices_by_lookup_key(client: stripe.StripeClient, catalog: Catalog) -> None:
    found = client.v1.prices.list(params={"lookup_keys": ["voice_monthly"]}).data
    assert [p.id for p in found] == [catalog.voice.id]
    assert found[0].recurring.usage_type == "licensed"
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.prices.create(
            params={
                "product": catalog.product.id,
                "unit_amount": 1,
                "currency": "usd",
                "recurring": {"interval": "month"},
                "lookup_key": "voice_monthly",
            }
        )


def test_trial_subscription(client: stripe.StripeClient, catalog: Catalog) -> None:
    sub = _subscribe(client, catalog, trial_period_days=14, expand=["latest_invoice"])
    assert sub.status == "trialing"
    assert sub.trial_end is not None and sub.trial_start is not None
    assert sub.trial_end - sub.trial_start == 14 * 86400
    assert sub.latest_invoice.amount_due == 0


def test_cancel_by_delete_and_by_sdk_cancel(
    client: stripe.StripeClient, catalog: Catalog, raw: Raw
) -> None:
    first = _subscribe(client, catalog)
    second = _subscribe(client, catalog)
    canceled = client.v1.subscriptions.cancel(first.id)
    assert canceled.status == "canceled"
    assert canceled.canceled_at is not None
    resp = raw.call("DELETE", f"/v1/subscriptions/{second.id}")
    assert resp.status_code == 200
    assert resp.json()["status"] == "canceled"
    deleted = client.v1.events.list(params={"type": "customer.subscription.deleted"}).data
    assert {e.data.object.id for e in deleted} == {first.id, second.id}
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.update(first.id, params={"items": [{"price": catalog.base.id}]})


def test_list_pagination_and_filters(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    emulator.freeze_clock()
    ids = [_subscribe(client, catalog).id for _ in range(5)]
    client.v1.subscriptions.cancel(ids[0])
    page1 = client.v1.subscriptions.list(params={"customer": catalog.customer.id, "limit": 2})
    assert page1.has_more is True
    assert [s.id for s in page1.data] == [ids[4], ids[3]]
    page2 = client.v1.subscriptions.list(
        params={"customer": catalog.customer.id, "limit": 2, "starting_after": page1.data[-1].id}
    )
    assert [s.id for s in page2.data] == [ids[2], ids[1]]
    assert page2.has_more is False  # the canceled one is not listed by default
    back = client.v1.subscriptions.list(params={"limit": 2, "ending_before": ids[1]})
    assert [s.id for s in back.data] == [ids[3], ids[2]]
    canceled = client.v1.subscriptions.list(params={"status": "canceled"})
    assert [s.id for s in canceled.data] == [ids[0]]
    everything = list(
        client.v1.subscriptions.list(params={"status": "all", "limit": 2}).auto_paging_iter()
    )
    assert len(everything) == 5


def test_subscription_items_service(client: stripe.StripeClient, catalog: Catalog) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    added = client.v1.subscription_items.create(
        params={
            "subscription": sub.id,
            "price": catalog.voice.id,
            "quantity": 4,
            "proration_behavior": "none",
        }
    )
    assert added.quantity == 4
    listed = client.v1.subscription_items.list(params={"subscription": sub.id}).data
    assert {i.price.id for i in listed} == {catalog.base.id, catalog.voice.id}
    updated = client.v1.subscription_items.update(
        added.id, params={"quantity": 6, "proration_behavior": "none"}
    )
    assert updated.quantity == 6
    client.v1.subscription_items.delete(added.id, params={"proration_behavior": "none"})
    again = client.v1.subscriptions.retrieve(sub.id)
    assert [i.price.id for i in again["items"].data] == [catalog.base.id]


def test_trial_end_now_and_item_metadata(client: stripe.StripeClient, catalog: Catalog) -> None:
    sub = client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [{"price": catalog.base.id, "metadata": {"seat": "base"}}],
            "trial_period_days": 30,
        }
    )
    assert sub["items"].data[0].metadata.to_dict() == {"seat": "base"}
    ended = client.v1.subscriptions.update(
        sub.id, params={"trial_end": "now", "expand": ["latest_invoice"]}
    )
    assert ended.status == "active"
    assert ended.latest_invoice.amount_paid == 3000
    assert client.v1.customers.retrieve(catalog.customer.id).currency == "usd"


def test_deleting_a_customer_ends_its_subscriptions(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    sub = _subscribe(client, catalog)
    client.v1.customers.delete(catalog.customer.id)
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    gone = client.v1.customers.retrieve(catalog.customer.id)
    assert gone.to_dict().get("deleted") is True
