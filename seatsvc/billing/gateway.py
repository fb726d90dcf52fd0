"""The Stripe gateway: one `StripeClient` instance, never the module-global key.

It speaks in the ledger's terms (seat types and absolute quantities) and
returns frozen snapshots, so the rest of the code never touches Stripe
objects. Errors are sorted into the three kinds a job must tell apart.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import stripe

from seatsvc import metrics
from seatsvc.billing.keys import Intent, body_digest
from seatsvc.billing.stripe_errors import PaymentDeclined as PaymentDeclined
from seatsvc.billing.stripe_errors import StripePermanent as StripePermanent
from seatsvc.billing.stripe_errors import StripeTransient as StripeTransient
from seatsvc.billing.stripe_errors import sorted_call
from seatsvc.config import Config

PAGE = 100  # list calls: the most Stripe returns per page
PRICE_LOOKUP_KEYS = {"base": "seatsvc_base", "voice": "seatsvc_voice"}
INVOICE_TAG = "seatsvc_invoice"  # metadata naming an invoice we made: agency, day, number
ENDED = frozenset({"canceled", "incomplete_expired"})  # a subscription that bills no more
# A trial that ends without payment details pauses (no invoice that must fail) until
# the agency adds a card and upgrades (Stripe: trial_settings.end_behavior).
TRIAL_SETTINGS = {"end_behavior": {"missing_payment_method": "pause"}}


@dataclass(frozen=True)
class ItemSnapshot:
    id: str
    price_id: str
    quantity: int


@dataclass(frozen=True)
class SubscriptionSnapshot:
    id: str
    customer_id: str
    status: str
    trial_end: datetime | None
    items: Mapping[str, ItemSnapshot]  # by seat type
    has_pending_update: bool = False
    # Stripe answered from its idempotency store: what it held then, not now.
    replayed: bool = False

    def quantity(self, seat_type: str) -> int:
        item = self.items.get(seat_type)
        return item.quantity if item else 0


@dataclass(frozen=True)
class InvoiceSnapshot:
    id: str
    status: str
    amount_due: int
    paid: bool


def stripe_client(
    config: Config, http_client: stripe.HTTPClient | None = None
) -> stripe.StripeClient:
    """Real Stripe with STRIPE_API_KEY, or whatever STRIPE_API_BASE names (the emulator)."""
    return stripe.StripeClient(
        config.stripe_api_key or "sk_test_emulator",
        base_addresses={"api": config.stripe_api_base} if config.stripe_api_base else None,
        # The jobs own retrying (RQ Retry with backoff), so the SDK must not add its own.
        max_network_retries=0,
        http_client=http_client or stripe.RequestsClient(timeout=20),
    )


class StripeGateway:
    def __init__(
        self,
        client: stripe.StripeClient,
        prices: Mapping[str, str],
        http_client: stripe.HTTPClient | None = None,
    ) -> None:
        self.client = client
        self.prices = dict(prices)  # seat type -> price id
        self._seat_type_of_price = {price: seat for seat, price in self.prices.items()}
        self._http_client = http_client
        self.calls = 0  # Stripe calls made through this gateway (reports, benchmarks)

    @classmethod
    def from_config(cls, config: Config) -> StripeGateway:
        http_client = stripe.RequestsClient(timeout=20)
        gateway = cls(stripe_client(config, http_client), {}, http_client)
        gateway.prices = gateway._resolve_prices(config)
        gateway._seat_type_of_price = {price: seat for seat, price in gateway.prices.items()}
        return gateway

    def close_connections(self) -> None:
        """Drop pooled HTTP connections (before a fork: a child must not share a socket)."""
        if self._http_client is not None:
            self._http_client.close()  # type: ignore[no-untyped-call]  # untyped in the SDK

    def _resolve_prices(self, config: Config) -> dict[str, str]:
        configured = {"base": config.stripe_price_base, "voice": config.stripe_price_voice}
        if all(configured.values()):
            return {seat: price for seat, price in configured.items() if price}
        found = self._call(
            lambda: self.client.v1.prices.list(
                {"lookup_keys": list(PRICE_LOOKUP_KEYS.values()), "limit": 10}
            )
        )
        by_key = {price.lookup_key: price.id for price in found.data}
        prices = {}
        for seat, key in PRICE_LOOKUP_KEYS.items():
            price_id = configured[seat] or by_key.get(key)
            if not price_id:
                raise StripePermanent(
                    f"no Stripe price for {seat} seats: set STRIPE_PRICE_{seat.upper()} or "
                    f"create a price with lookup_key {key!r} (flask billing bootstrap-prices)"
                )
            prices[seat] = price_id
        return prices

    # ---- customers and subscriptions ---------------------------------------

    def find_customer(self, agency_id: str, created_after: datetime) -> str | None:
        """The agency's customer if one exists (`metadata.agency_id`), the oldest if several.

        A list filtered by creation time, not `customers.search`: search is eventually
        consistent and would miss a customer created a moment ago by a try whose
        answer was lost. Every customer of the agency was created after the agency.
        """
        params = {"created": {"gte": int(created_after.timestamp())}}
        found = [
            customer
            for customer in self._paginate("/v1/customers", params)
            if (customer.get("metadata") or {}).get("agency_id") == agency_id
        ]
        if not found:
            return None
        return str(min(found, key=lambda customer: (customer["created"], customer["id"]))["id"])

    def create_customer(self, agency_id: str, name: str, email: str, intent: Intent) -> str:
        """A replayed answer is fine here: the customer's id is all we keep of it."""
        params = {"name": name, "email": email, "metadata": {"agency_id": agency_id}}
        customer = self._call(
            lambda: self.client.v1.customers.create(
                params,  # type: ignore[arg-type]
                {"idempotency_key": intent.key("customer", params)},
            )
        )
        return str(customer.id)

    def find_subscription(self, customer_id: str, agency_id: str) -> SubscriptionSnapshot | None:
        """The customer's live subscription made for the agency (ours: `metadata.agency_id`)."""
        found = [
            subscription
            for subscription in self._paginate(
                "/v1/subscriptions", {"customer": customer_id, "status": "all"}
            )
            if (subscription.get("metadata") or {}).get("agency_id") == agency_id
            and subscription["status"] not in ENDED
        ]
        if not found:
            return None
        oldest = min(found, key=lambda subscription: (subscription["created"], subscription["id"]))
        return self._snapshot(oldest)

    def create_subscription(
        self,
        customer_id: str,
        agency_id: str,
        quantities: Mapping[str, int],
        trial_days: int | None,
        intent: Intent,
    ) -> SubscriptionSnapshot:
        items = [
            {"price": self.prices[seat], "quantity": quantity}
            for seat, quantity in sorted(quantities.items())
            if quantity > 0 or seat == "base"
        ]
        params: dict[str, Any] = {
            "customer": customer_id,
            "items": items,
            "metadata": {"agency_id": agency_id},
            # Without a card yet the subscription waits for one instead of failing.
            "payment_behavior": "default_incomplete",
            "proration_behavior": "create_prorations",
        }
        if trial_days:
            params["trial_period_days"] = trial_days
            params["trial_settings"] = TRIAL_SETTINGS
        key = intent.key("subscription", params)
        subscription = self._call(
            lambda: self.client.v1.subscriptions.create(params, {"idempotency_key": key})  # type: ignore[arg-type]
        )
        return self._snapshot(subscription, replayed=_replayed(subscription))

    def get_subscription(self, subscription_id: str) -> SubscriptionSnapshot:
        return self._snapshot(
            self._call(lambda: self.client.v1.subscriptions.retrieve(subscription_id))
        )

    def set_quantities(
        self,
        subscription_id: str,
        item_ids: Mapping[str, str | None],
        quantities: Mapping[str, int],
        proration_behavior: str,
        intent: Intent,
    ) -> SubscriptionSnapshot:
        """Set every item to its absolute quantity in one call (never "+1").

        Every known item is sent, changed or not: what we last saw of Stripe may
        be stale, and an absolute quantity is harmless to repeat. An item is added
        by price only when the caller knows the subscription has none for it (two
        items with one price are refused).
        """
        items: list[dict[str, Any]] = []
        for seat, quantity in sorted(quantities.items()):
            item_id = item_ids.get(seat)
            if item_id:
                items.append({"id": item_id, "quantity": quantity})
            elif quantity > 0:
                items.append({"price": self.prices[seat], "quantity": quantity})
        params = {"items": items, "proration_behavior": proration_behavior}
        # The quantities in the key's readable part, for whoever reads the request log.
        wanted = "-".join(f"{seat}{quantities[seat]}" for seat in sorted(quantities))
        key = intent.key(f"quantities:{wanted}", {"subscription": subscription_id, **params})
        subscription = self._call(
            lambda: self.client.v1.subscriptions.update(
                subscription_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": key},
            )
        )
        return self._snapshot(subscription, replayed=_replayed(subscription))

    def invoice_pending_items(
        self, customer_id: str, subscription_id: str, tag: str, token: str
    ) -> InvoiceSnapshot | None:
        """One invoice of the pending prorations, paid now; None when nothing is pending.

        `tag` names the invoice (agency, day, number) in its metadata: a try after a
        5xx or a lost answer first finds the invoice an earlier try made and finishes
        it instead of making another. `token` is new for every try, so each try's
        writes go under keys of their own and no saved 500 is replayed to them.
        """
        invoice = self._unfinished_invoice(subscription_id, tag)
        if invoice is None:
            pending = self._call(
                lambda: self.client.v1.invoice_items.list(
                    {"customer": customer_id, "pending": True, "limit": 1}
                )
            )
            if not pending.data:
                return None
            params = {
                "customer": customer_id,
                "subscription": subscription_id,
                "pending_invoice_items_behavior": "include",
                "auto_advance": True,
                "metadata": {INVOICE_TAG: tag},
            }
            key = f"seatsvc:{tag}:create:{token}:{body_digest(params)}"
            invoice = self._call(
                lambda: self.client.v1.invoices.create(params, {"idempotency_key": key})  # type: ignore[arg-type]
            )
        if invoice.status == "draft":
            draft_id = str(invoice.id)
            invoice = self._call(
                lambda: self.client.v1.invoices.finalize_invoice(
                    draft_id, {}, {"idempotency_key": f"seatsvc:{tag}:finalize:{draft_id}:{token}"}
                )
            )
        if invoice.status == "open":
            open_id = str(invoice.id)
            invoice = self._call(
                lambda: self.client.v1.invoices.pay(
                    open_id, {}, {"idempotency_key": f"seatsvc:{tag}:pay:{open_id}:{token}"}
                )
            )
        return InvoiceSnapshot(
            id=str(invoice.id),
            status=str(invoice.status),
            amount_due=int(invoice.amount_due or 0),
            paid=invoice.status == "paid",
        )

    def _unfinished_invoice(self, subscription_id: str, tag: str) -> Any:
        """Our invoice `tag`, left draft or open by an earlier try (None: there is none)."""
        for status in ("draft", "open"):
            found = self._call(
                lambda status=status: self.client.v1.invoices.list(
                    {"subscription": subscription_id, "status": status, "limit": PAGE}
                )
            )
            for invoice in found.data:
                if (invoice.to_dict().get("metadata") or {}).get(INVOICE_TAG) == tag:
                    return invoice
        return None

    # ---- reads for webhooks and reconciliation ---------------------------------

    def retrieve_invoice(self, invoice_id: str) -> dict[str, Any]:
        return plain(self._call(lambda: self.client.v1.invoices.retrieve(invoice_id)))

    def all_subscriptions(self) -> Iterator[SubscriptionSnapshot]:
        """Every subscription of the account, canceled ones included (`status=all`)."""
        for item in self._paginate("/v1/subscriptions", {"status": "all"}):
            yield self._snapshot(item)

    def events_since(self, created_after: int, types: Sequence[str]) -> Iterator[dict[str, Any]]:
        """Events created after `created_after` (unix time), newest first, as Stripe sent them."""
        params: dict[str, Any] = {"created": {"gt": created_after}}
        if types:
            params["types"] = list(types)
        yield from self._paginate("/v1/events", params)

    def _paginate(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        """Pages of plain JSON through the client's `raw_request`, 100 at a time: building
        the SDK's objects for 100 subscriptions costs more CPU than the HTTP round trip."""
        after: str | None = None
        while True:
            page_params = {**params, "limit": PAGE}
            if after is not None:
                page_params["starting_after"] = after
            response = self._call(
                lambda query=page_params: self.client.raw_request("get", path, **query)
            )
            page: dict[str, Any] = response.data
            items: list[dict[str, Any]] = page["data"]
            yield from items
            if not page.get("has_more") or not items:
                return
            after = str(items[-1]["id"])

    # ---- helpers -------------------------------------------------------------

    def _snapshot(self, stripe_object: Any, replayed: bool = False) -> SubscriptionSnapshot:
        subscription = (
            stripe_object.to_dict() if hasattr(stripe_object, "to_dict") else stripe_object
        )
        items = {}
        for item in subscription["items"]["data"]:
            price_id = item["price"]["id"] if isinstance(item["price"], Mapping) else item["price"]
            seat = self._seat_type_of_price.get(str(price_id))
            if seat is not None:
                items[seat] = ItemSnapshot(str(item["id"]), str(price_id), int(item["quantity"]))
        customer = subscription["customer"]
        trial_end = subscription.get("trial_end")
        return SubscriptionSnapshot(
            id=str(subscription["id"]),
            customer_id=str(customer["id"] if isinstance(customer, Mapping) else customer),
            status=str(subscription["status"]),
            trial_end=datetime.fromtimestamp(trial_end, UTC) if trial_end else None,
            items=items,
            has_pending_update=bool(subscription.get("pending_update")),
            replayed=replayed,
        )

    def _call(self, request: Any) -> Any:
        self.calls += 1
        try:
            answer = sorted_call(request)
        except PaymentDeclined:
            metrics.count_stripe_call("declined")
            raise
        except StripeTransient:
            metrics.count_stripe_call("transient")
            raise
        except StripePermanent:
            metrics.count_stripe_call("permanent")
            raise
        metrics.count_stripe_call(None)
        return answer


def plain(stripe_object: Any) -> dict[str, Any]:
    """JSON-ready, as Stripe sent it: the SDK turns `*_decimal` strings into Decimals."""
    found: dict[str, Any] = json.loads(json.dumps(stripe_object.to_dict(), default=str))
    return found


def _replayed(stripe_object: Any) -> bool:
    """Stripe answered from its idempotency store (`Idempotent-Replayed: true`)."""
    response = getattr(stripe_object, "last_response", None)
    headers: Mapping[str, str] = response.headers if response is not None else {}
    # requests' headers are case-insensitive; a plain dict may spell it either way.
    value = headers.get("Idempotent-Replayed") or headers.get("idempotent-replayed") or ""
    return value.lower() == "true"
