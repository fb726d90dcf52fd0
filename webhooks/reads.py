"""The Stripe reads webhooks and reconciliation need, beside the billing gateway.

Same client, same error sorting and the same snapshots as
`seatsvc.billing.gateway.StripeGateway` (whose writes the billing worker owns);
lists are paginated with `starting_after`, 100 at a time, so comparing every
agency costs one call per hundred subscriptions, not one per agency.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from seatsvc.billing.gateway import StripeGateway, SubscriptionSnapshot

PAGE = 100


@dataclass
class CallCounter:
    """Stripe calls made, for the sweep's record and the benchmark."""

    calls: int = 0


def retrieve_subscription(
    gateway: StripeGateway, subscription_id: str, counter: CallCounter | None = None
) -> SubscriptionSnapshot:
    if counter is not None:
        counter.calls += 1
    return gateway.get_subscription(subscription_id)


def retrieve_invoice(gateway: StripeGateway, invoice_id: str) -> dict[str, Any]:
    return plain(gateway._call(lambda: gateway.client.v1.invoices.retrieve(invoice_id)))


def all_subscriptions(
    gateway: StripeGateway, counter: CallCounter | None = None
) -> Iterator[SubscriptionSnapshot]:
    """Every subscription of the account, canceled ones included (`status=all`)."""
    for item in _paginate(gateway, "/v1/subscriptions", {"status": "all"}, counter):
        yield gateway._snapshot(item)


def events_since(
    gateway: StripeGateway,
    created_after: int,
    types: Sequence[str],
    counter: CallCounter | None = None,
) -> Iterator[dict[str, Any]]:
    """Events created after `created_after` (unix time), newest first, as Stripe sent them."""
    params: dict[str, Any] = {"created": {"gt": created_after}}
    if types:
        params["types"] = list(types)
    yield from _paginate(gateway, "/v1/events", params, counter)


def plain(stripe_object: Any) -> dict[str, Any]:
    """JSON-ready, as Stripe sent it: the SDK turns `*_decimal` strings into Decimals."""
    found: dict[str, Any] = json.loads(json.dumps(stripe_object.to_dict(), default=str))
    return found


def _paginate(
    gateway: StripeGateway, path: str, params: dict[str, Any], counter: CallCounter | None
) -> Iterator[dict[str, Any]]:
    """Pages of plain JSON through the client's `raw_request`: building the SDK's objects
    for 100 subscriptions costs more CPU than the whole HTTP round trip."""
    after: str | None = None
    while True:
        page_params = {**params, "limit": PAGE}
        if after is not None:
            page_params["starting_after"] = after
        if counter is not None:
            counter.calls += 1
        response = gateway._call(
            lambda query=page_params: gateway.client.raw_request("get", path, **query)
        )
        page: dict[str, Any] = response.data
        items: list[dict[str, Any]] = page["data"]
        yield from items
        if not page.get("has_more") or not items:
            return
        after = str(items[-1]["id"])
