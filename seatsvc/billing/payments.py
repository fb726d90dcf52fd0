"""Stripe calls for payment details and the trial-to-paid upgrade.

Kept apart from `seatsvc.billing.gateway` (which converges quantities) but on its
client and its `_call`, so errors are sorted the same way (transient, permanent,
declined) and counted in the same metrics. Every write carries an idempotency key
chosen by the caller from what it wants Stripe to hold.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from seatsvc.billing.gateway import StripeGateway, SubscriptionSnapshot


@dataclass(frozen=True)
class CheckoutLink:
    id: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class CardSummary:
    """What seatsvc keeps of a card: enough to show it, never to charge it."""

    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int

    def as_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "brand": self.brand,
            "last4": self.last4,
            "exp_month": self.exp_month,
            "exp_year": self.exp_year,
        }


@dataclass(frozen=True)
class CompletedSetup:
    """A setup-mode Checkout Session as Stripe holds it now."""

    id: str
    status: str
    customer_id: str | None
    card: CardSummary | None


@dataclass(frozen=True)
class UpgradeCharge:
    """What ending the trial (or resuming) made Stripe do."""

    subscription: SubscriptionSnapshot
    invoice_id: str | None
    invoice_status: str | None
    amount_due: int
    amount_paid: int
    currency: str | None
    decline_reason: str | None


class PaymentsGateway:
    def __init__(self, gateway: StripeGateway) -> None:
        self.gateway = gateway
        self.client = gateway.client

    def _call(self, request: Any) -> Any:
        return self.gateway._call(request)  # one error-sorting policy for all calls

    # ---- payment details ------------------------------------------------------

    def create_setup_checkout(
        self,
        customer_id: str,
        success_url: str,
        cancel_url: str,
        metadata: Mapping[str, str],
        key: str,
    ) -> CheckoutLink:
        # No `expires_at`: Stripe's default (24 h) on Stripe's clock, read back from the
        # answer, so our clock's skew can never make the request invalid.
        session = self._call(
            lambda: self.client.v1.checkout.sessions.create(
                {
                    "mode": "setup",
                    "customer": customer_id,
                    "currency": "usd",
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                    "metadata": dict(metadata),
                    "setup_intent_data": {"metadata": dict(metadata)},
                },
                {"idempotency_key": key},
            )
        )
        return CheckoutLink(
            id=str(session.id),
            url=str(session.url),
            expires_at=datetime.fromtimestamp(int(session.expires_at), UTC),
        )

    def create_portal(self, customer_id: str, return_url: str, key: str) -> str:
        session = self._call(
            lambda: self.client.v1.billing_portal.sessions.create(
                {"customer": customer_id, "return_url": return_url}, {"idempotency_key": key}
            )
        )
        return str(session.url)

    def retrieve_setup(self, session_id: str) -> CompletedSetup:
        """The session with its SetupIntent's card, fetched now (never the event's copy)."""
        session = self._call(
            lambda: self.client.v1.checkout.sessions.retrieve(
                session_id, {"expand": ["setup_intent.payment_method"]}
            )
        )
        intent = session.setup_intent
        method = getattr(intent, "payment_method", None) if intent is not None else None
        card = _card(method) if method is not None and not isinstance(method, str) else None
        customer = session.customer
        return CompletedSetup(
            id=str(session.id),
            status=str(session.status),
            customer_id=str(customer) if customer else None,
            card=card,
        )

    def make_default(
        self, customer_id: str, subscription_id: str | None, method_id: str, key: str
    ) -> None:
        """The card pays the customer's invoices and the subscription's."""
        self._call(
            lambda: self.client.v1.customers.update(
                customer_id,
                {"invoice_settings": {"default_payment_method": method_id}},
                {"idempotency_key": f"{key}:customer"},
            )
        )
        if subscription_id:
            self._call(
                lambda: self.client.v1.subscriptions.update(
                    subscription_id,
                    {"default_payment_method": method_id},
                    {"idempotency_key": f"{key}:subscription"},
                )
            )

    def default_card(self, customer_id: str) -> CardSummary | None:
        customer = self._call(
            lambda: self.client.v1.customers.retrieve(
                customer_id, {"expand": ["invoice_settings.default_payment_method"]}
            )
        )
        method = customer.invoice_settings.default_payment_method
        return _card(method) if method is not None and not isinstance(method, str) else None

    # ---- the upgrade --------------------------------------------------------------

    def end_trial_with(
        self,
        subscription_id: str,
        item_ids: Mapping[str, str | None],
        quantities: Mapping[str, int],
        key: str,
    ) -> UpgradeCharge:
        """One update: the purchased seats, `trial_end=now`; Stripe invoices the first
        period and charges it at once. A decline leaves the subscription `past_due`
        (`allow_incomplete`), the seats stay: the invoice's failure is what we report."""
        # Nothing was billed in the trial: no prorations, the first period is the invoice.
        return self.set_items(subscription_id, item_ids, quantities, "none", key, trial_end="now")

    def set_items(
        self,
        subscription_id: str,
        item_ids: Mapping[str, str | None],
        quantities: Mapping[str, int],
        proration_behavior: str,
        key: str,
        **extra: Any,
    ) -> UpgradeCharge:
        """Every item to its absolute quantity in one update (plus `extra` parameters)."""
        params: dict[str, Any] = {
            "items": self._items(item_ids, quantities),
            "proration_behavior": proration_behavior,
            "expand": ["latest_invoice"],
            **extra,
        }
        subscription = self._call(
            lambda: self.client.v1.subscriptions.update(
                subscription_id,
                params,  # type: ignore[arg-type]
                {"idempotency_key": key},
            )
        )
        return self._charge(subscription)

    def resume(self, subscription_id: str, key: str) -> UpgradeCharge:
        """A subscription paused at the end of its trial: a new period from now, charged."""
        subscription = self._call(
            lambda: self.client.v1.subscriptions.resume(
                subscription_id, {"expand": ["latest_invoice"]}, {"idempotency_key": key}
            )
        )
        return self._charge(subscription)

    # ---- helpers ----------------------------------------------------------------

    def _items(
        self, item_ids: Mapping[str, str | None], quantities: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for seat, quantity in sorted(quantities.items()):
            item_id = item_ids.get(seat)
            if item_id:
                items.append({"id": item_id, "quantity": quantity})
            elif quantity > 0:
                items.append({"price": self.gateway.prices[seat], "quantity": quantity})
        return items

    def _charge(self, subscription: Any) -> UpgradeCharge:
        invoice = subscription.latest_invoice
        snapshot = self.gateway._snapshot(subscription)
        if invoice is None or isinstance(invoice, str):
            return UpgradeCharge(snapshot, invoice, None, 0, 0, None, None)
        error = getattr(invoice, "last_finalization_error", None)
        return UpgradeCharge(
            subscription=snapshot,
            invoice_id=str(invoice.id),
            invoice_status=str(invoice.status),
            amount_due=int(invoice.amount_due or 0),
            amount_paid=int(invoice.amount_paid or 0),
            currency=str(invoice.currency) if invoice.currency else None,
            decline_reason=None if invoice.status == "paid" else _reason(error),
        )


def _reason(error: Any) -> str:
    message = getattr(error, "message", None) if error is not None else None
    return str(message or "The card was declined when the first invoice was charged.")


def _card(method: Any) -> CardSummary | None:
    card = getattr(method, "card", None)
    if card is None:
        return None
    return CardSummary(
        id=str(method.id),
        brand=str(card.brand),
        last4=str(card.last4),
        exp_month=int(card.exp_month),
        exp_year=int(card.exp_year),
    )
