"""What every Stripe-failure test checks at its end: Stripe holds exactly the ledger."""

from __future__ import annotations

from typing import Any

from tests.test_billing.conftest import Billing


def ours(objects: list[dict[str, Any]], agency_id: str) -> list[dict[str, Any]]:
    return [o for o in objects if (o.get("metadata") or {}).get("agency_id") == agency_id]


def assert_stripe_holds_the_ledger(bill: Billing, agency_id: str) -> None:
    """One customer, one subscription, one item per price, quantities = purchased, in sync."""
    (customer,) = ours(bill.emu.objects("customer"), agency_id)
    (subscription,) = ours(bill.emu.objects("subscription"), agency_id)
    agency = bill.agency(agency_id)
    assert agency.stripe_customer_id == customer["id"]
    assert agency.stripe_subscription_id == subscription["id"]
    prices = [item["price"]["id"] for item in subscription["items"]["data"]]
    assert len(prices) == len(set(prices)), prices
    for seat, pool in bill.pools(agency_id).items():
        assert bill.stripe_quantity(agency_id, seat) == pool.purchased, seat
        assert pool.billed == pool.purchased, seat
        assert bill.api.seats(agency_id, seat)["sync"] == "in_sync", seat


def assert_no_refusals(bill: Billing) -> None:
    """No idempotency_error, no duplicate price: nothing Stripe refused as a bad request."""
    refused = [e for e in bill.emu.requests(method="POST") if e["status"] == 400]
    assert refused == [], refused
