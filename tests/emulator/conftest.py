"""Fixtures for the Stripe emulator tests: one emulator per session on a free port,
reset before each test; a webhook sink over real sockets."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
import stripe
from emulator_support import API_KEY, Catalog, Raw, WebhookSink, _Quiet
from werkzeug.serving import make_server

from stripe_emulator import StripeEmulator


@pytest.fixture(scope="session")
def emulator() -> Iterator[StripeEmulator]:
    emu = StripeEmulator()
    emu.start()
    yield emu
    emu.stop()


@pytest.fixture(autouse=True)
def _fresh_emulator(emulator: StripeEmulator) -> None:
    emulator.reset()
    emulator.configure(webhook_retry_base=0.05)


@pytest.fixture
def client(emulator: StripeEmulator) -> stripe.StripeClient:
    return emulator.client(API_KEY)


@pytest.fixture
def raw(emulator: StripeEmulator) -> Raw:
    return Raw(emulator.base_url)


@pytest.fixture
def catalog(client: stripe.StripeClient) -> Catalog:
    product = client.v1.products.create(params={"name": "Seats"})
    base = client.v1.prices.create(
        params={
            "product": product.id,
            "unit_amount": 3000,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "lookup_key": "base_monthly",
        }
    )
    voice = client.v1.prices.create(
        params={
            "product_data": {"name": "Voice"},
            "unit_amount": 1000,
            "currency": "usd",
            "recurring": {"interval": "month"},
            "lookup_key": "voice_monthly",
        }
    )
    customer = client.v1.customers.create(
        params={
            "email": "clinic@example.com",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    return Catalog(product, base, voice, customer)


@pytest.fixture
def sink() -> Iterator[WebhookSink]:
    hook = WebhookSink()
    hook.server = make_server("127.0.0.1", 0, hook, threaded=True, request_handler=_Quiet)
    thread = threading.Thread(
        target=hook.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    yield hook
    hook.server.shutdown()
    hook.server.server_close()
