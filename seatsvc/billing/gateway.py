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
from seatsvc.config import Config

PAGE = 100  # list calls: the most Stripe returns per page
PRICE_LOOKUP_KEYS = {"base": "seatsvc_base", "voice": "seatsvc_voice"}
# A trial that ends without payment details pauses (no invoice that must fail) until
# the agency adds a card and upgrades (Stripe: trial_settings.end_behavior).
TRIAL_SETTINGS = {"end_behavior": {"missing_payment_method": "pause"}}


class StripeTransient(Exception):
    """Stripe is down, slow, rate limiting or locked: try again later."""


class StripePermanent(Exception):
    """Stripe refused the request itself: retrying the same call cannot help."""


class PaymentDeclined(Exception):
    """The card was declined: the admins must act; never retried in a loop."""


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

    def quantity(self, seat_type: str) -> int:
        item = self.items.get(seat_type)
        return item.quantity if item else 0


@dataclass(frozen=True)
class InvoiceSnapshot:
    id: str
    status: str
    amount_due: int
    paid: bool


def stripe_client(config: Config) -> stripe.StripeClient:
    """Real Stripe with STRIPE_API_KEY, or whatever STRIPE_API_BASE names (the emulator)."""
    return stripe.StripeClient(
        config.stripe_api_key or "sk_test_emulator",
        base_addresses={"api": config.stripe_api_base} if config.stripe_api_base else None,
        # The jobs own retrying (RQ Retry with backoff), so the SDK must not add its own.
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=20),
    )


class StripeGateway:
    def __init__(self, client: stripe.StripeClient, prices: Mapping[str, str]) -> None:
        self.client = client
        self.prices = dict(prices)  # seat type -> price id
        self._seat_type_of_price = {price: seat for seat, price in self.prices.items()}
        self.calls = 0  # Stripe calls made through this gateway (reports, benchmarks)

    @classmethod
    def from_config(cls, config: Config) -> StripeGateway:
        gateway = cls(stripe_client(config), {})
        gateway.prices = gateway._resolve_prices(config)
        gateway._seat_type_of_price = {price: seat for seat, price in gateway.prices.items()}
        return gateway

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

    def create_customer(self, agency_id: str, name: str, email: str, key: str) -> str:
        customer = self._call(
            lambda: self.client.v1.customers.create(
                {"name": name, "email": email, "metadata": {"agency_id": agency_id}},
                {"idempotency_key": key},
            )
        )
        return str(customer.id)

    def create_subscription(
        self,
        customer_id: str,
        agency_id: str,
        quantities: Mapping[str, int],
        trial_days: int | None,
        key: str,
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
        subscription = self._call(
            lambda: self.client.v1.subscriptions.create(params, {"idempotency_key": key})  # type: ignore[arg-type]
        )
        return self._snapshot(subscription)

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
        key: str,
    ) -> SubscriptionSnapshot:
        """Set every item to its absolute quantity in one call (never "+1").

        Every known item is sent, changed or not: what we last saw of Stripe may
        be stale, and an absolute quantity is harmless to repeat.
        """
        items: list[dict[str, Any]] = []
        for seat, quantity in sorted(quantities.items()):
            item_id = item_ids.get(seat)
            if item_id:
                items.append({"id": item_id, "quantity": quantity})
            elif quantity > 0:
                items.append({"price": self.prices[seat], "quantity": quantity})
        params = {"items": items, "proration_behavior": proration_behavior}
        subscription = self._call(
            lambda: self.client.v1.subscriptions.update(
                subscription_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": key},
            )
        )
        return self._snapshot(subscription)

    def invoice_pending_items(
        self, customer_id: str, subscription_id: str, key: str
    ) -> InvoiceSnapshot | None:
        """One invoice of the pending prorations, paid now; None when nothing is pending."""
        pending = self._call(
            lambda: self.client.v1.invoice_items.list(
                {"customer": customer_id, "pending": True, "limit": 1}
            )
        )
        if not pending.data:
            return None
        invoice = self._call(
            lambda: self.client.v1.invoices.create(
                {
                    "customer": customer_id,
                    "subscription": subscription_id,
                    "pending_invoice_items_behavior": "include",
                    "auto_advance": True,
                },
                {"idempotency_key": key},
            )
        )
        if invoice.status == "draft":
            invoice = self._call(
                lambda: self.client.v1.invoices.finalize_invoice(
                    str(invoice.id), {}, {"idempotency_key": f"{key}:finalize"}
                )
            )
        if invoice.status == "open":
            invoice = self._call(
                lambda: self.client.v1.invoices.pay(
                    str(invoice.id), {}, {"idempotency_key": f"{key}:pay"}
                )
            )
        return InvoiceSnapshot(
            id=str(invoice.id),
            status=str(invoice.status),
            amount_due=int(invoice.amount_due or 0),
            paid=invoice.status == "paid",
        )

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

    def _snapshot(self, stripe_object: Any) -> SubscriptionSnapshot:
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
        )

    def _call(self, request: Any) -> Any:
        self.calls += 1
        try:
            answer = StripeGateway._sorted_call(request)
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

    @staticmethod
    def _sorted_call(request: Any) -> Any:
        try:
            return request()
        except stripe.CardError as error:
            raise PaymentDeclined(_describe(error)) from error
        except (stripe.RateLimitError, stripe.APIConnectionError) as error:
            raise StripeTransient(_describe(error)) from error
        except stripe.APIError as error:
            raise StripeTransient(_describe(error)) from error
        except stripe.StripeError as error:
            if (error.http_status or 0) >= 500 or error.http_status == 409:
                raise StripeTransient(_describe(error)) from error
            raise StripePermanent(_describe(error)) from error


def plain(stripe_object: Any) -> dict[str, Any]:
    """JSON-ready, as Stripe sent it: the SDK turns `*_decimal` strings into Decimals."""
    found: dict[str, Any] = json.loads(json.dumps(stripe_object.to_dict(), default=str))
    return found


def _describe(error: stripe.StripeError) -> str:
    """A readable reason with no request body (it may carry personal data)."""
    code = getattr(error, "code", None) or type(error).__name__
    return f"stripe {error.http_status or '-'} {code}: {error.user_message or str(error)[:200]}"
