"""The two per-seat prices, found by lookup key (created on a fresh emulator or test account)."""

from __future__ import annotations

import stripe

from seatsvc.billing.gateway import PRICE_LOOKUP_KEYS

# Cents per seat per month, for the local stack and tests only; production prices
# are made in Stripe's dashboard and named by STRIPE_PRICE_BASE / STRIPE_PRICE_VOICE.
DEV_UNIT_AMOUNTS = {"base": 3000, "voice": 1500}


def ensure_prices(client: stripe.StripeClient) -> dict[str, str]:
    """Price id per seat type, creating the missing ones. Safe to run again."""
    found = client.v1.prices.list({"lookup_keys": list(PRICE_LOOKUP_KEYS.values()), "limit": 10})
    by_key = {price.lookup_key: price.id for price in found.data}
    prices = {}
    for seat, key in PRICE_LOOKUP_KEYS.items():
        if key not in by_key:
            created = client.v1.prices.create(
                {
                    "currency": "usd",
                    "unit_amount": DEV_UNIT_AMOUNTS[seat],
                    "recurring": {"interval": "month", "usage_type": "licensed"},
                    "lookup_key": key,
                    "product_data": {"name": f"seatsvc {seat} seat"},
                },
                {"idempotency_key": f"seatsvc:price:{key}"},
            )
            by_key[key] = created.id
        prices[seat] = str(by_key[key])
    return prices
