"""A subscription cannot hold two items with the same price (DESIGN.md, "Stripe's limits"):
such a request is refused with 400 and changes nothing; items are updated by id."""

from __future__ import annotations

from typing import Any

import pytest
import stripe
from emulator_support import Catalog

from stripe_emulator import StripeEmulator


def _sub(client: stripe.StripeClient, catalog: Catalog) -> Any:
    return client.v1.subscriptions.create(
        params={
            "customer": catalog.customer.id,
            "items": [
                {"price": catalog.base.id, "quantity": 2},
                {"price": catalog.voice.id, "quantity": 1},
            ],
        }
    )


def _items(emulator: StripeEmulator, sub_id: str) -> list[tuple[str, int]]:
    found = emulator.get(sub_id)
    assert found is not None
    return sorted((i["price"]["id"], i["quantity"]) for i in found["items"]["data"])


def test_create_with_two_items_of_one_price_is_refused(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.create(
            params={
                "customer": catalog.customer.id,
                "items": [{"price": catalog.base.id}, {"price": catalog.base.id, "quantity": 2}],
            }
        )
    assert info.value.http_status == 400
    assert info.value.param == "plan"
    assert info.value.user_message == (
        "Cannot create a Subscription with multiple Subscription Items with the same Price: "
        f"{catalog.base.id}"
    )
    assert emulator.objects("subscription") == []
    assert emulator.objects("invoice") == []


@pytest.mark.parametrize("how", ["add_existing", "two_new", "reprice_onto_other"])
def test_update_that_would_duplicate_a_price_changes_nothing(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator, how: str
) -> None:
    sub = _sub(client, catalog)
    base_item, voice_item = (i.id for i in sub["items"].data)
    before = _items(emulator, sub.id)
    events_before = len(emulator.events())
    other = client.v1.prices.create(
        params={
            "product": catalog.product.id,
            "unit_amount": 500,
            "currency": "usd",
            "recurring": {"interval": "month"},
        }
    )
    items: list[dict[str, Any]] = {
        "add_existing": [{"price": catalog.base.id, "quantity": 5}],
        "two_new": [{"price": other.id}, {"price": other.id}],
        "reprice_onto_other": [{"id": voice_item, "price": catalog.base.id}],
    }[how]
    duplicated = other.id if how == "two_new" else catalog.base.id
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.update(sub.id, params={"items": items})
    assert info.value.http_status == 400
    assert info.value.user_message == (
        f"Cannot add multiple subscription items with the same price: {duplicated}"
    )
    assert _items(emulator, sub.id) == before
    assert len(emulator.events()) == events_before + 1  # only price.created
    assert base_item in {i.id for i in client.v1.subscriptions.retrieve(sub.id)["items"].data}


def test_subscription_items_create_with_a_held_price_is_refused(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = _sub(client, catalog)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscription_items.create(
            params={"subscription": sub.id, "price": catalog.voice.id, "quantity": 3}
        )
    assert info.value.http_status == 400
    assert _items(emulator, sub.id) == sorted([(catalog.base.id, 2), (catalog.voice.id, 1)])


def test_updating_an_item_by_id_with_its_own_price_is_fine(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = _sub(client, catalog)
    base_item = sub["items"].data[0]
    client.v1.subscriptions.update(
        sub.id, params={"items": [{"id": base_item.id, "price": catalog.base.id, "quantity": 4}]}
    )
    assert _items(emulator, sub.id) == sorted([(catalog.base.id, 4), (catalog.voice.id, 1)])


def test_replacing_a_deleted_item_with_its_price_is_fine(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = _sub(client, catalog)
    voice_item = sub["items"].data[1]
    client.v1.subscriptions.update(
        sub.id,
        params={
            "items": [
                {"id": voice_item.id, "deleted": True},
                {"price": catalog.voice.id, "quantity": 6},
            ]
        },
    )
    assert _items(emulator, sub.id) == sorted([(catalog.base.id, 2), (catalog.voice.id, 6)])
