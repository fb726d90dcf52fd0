"""The Stripe reads webhooks and reconciliation need, beside the billing gateway.

Same client, same error sorting and the same snapshots as
`seatsvc.billing.gateway.StripeGateway` (whose writes the billing worker owns);
lists are paginated with `starting_after`, 100 at a time, so comparing every
agency costs one call per hundred subscriptions, not one per agency.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
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
    for item in _paginate(
        gateway,
        lambda params: gateway.client.v1.subscriptions.list(params),  # type: ignore[arg-type]
        {"status": "all"},
        counter,
    ):
        yield gateway._snapshot(item)


def events_since(
    gateway: StripeGateway,
    created_after: int,
    types: Sequence[str],
    counter: CallCounter | None = None,
) -> Iterator[dict[str, Any]]:
    """Events created after `created_after` (unix time), newest first, as plain dicts."""
    params: dict[str, Any] = {"created": {"gt": created_after}}
    if types:
        params["types"] = list(types)
    for item in _paginate(
        gateway,
        lambda page: gateway.client.v1.events.list(page),  # type: ignore[arg-type]
        params,
        counter,
    ):
        yield plain(item)


def plain(stripe_object: Any) -> dict[str, Any]:
    """JSON-ready, as Stripe sent it: the SDK turns `*_decimal` strings into Decimals."""
    found: dict[str, Any] = json.loads(json.dumps(stripe_object.to_dict(), default=str))
    return found


def _paginate(
    gateway: StripeGateway,
    list_call: Callable[[dict[str, Any]], Any],
    params: dict[str, Any],
    counter: CallCounter | None,
) -> Iterator[Any]:
    after: str | None = None
    while True:
        page_params = {**params, "limit": PAGE}
        if after is not None:
            page_params["starting_after"] = after
        if counter is not None:
            counter.calls += 1
        page = gateway._call(lambda params=page_params: list_call(params))
        yield from page.data
        if not page.has_more or not page.data:
            return
        after = str(page.data[-1].id)
