"""Checkout (setup mode), SetupIntents, the portal, trial_settings pause/resume, trial_end=now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import requests
import stripe
from emulator_support import Catalog, Raw

from stripe_emulator import StripeEmulator
from stripe_emulator.errors import StripeError

FIXTURES = Path(__file__).resolve().parent / "data" / "stripe_fixtures3.json"
DAY = 86400


@pytest.fixture(scope="module")
def stripe_fixtures() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources


def same_keys(obj: dict[str, Any], fixture: dict[str, Any]) -> None:
    assert set(obj) == set(fixture), (
        sorted(set(fixture) - set(obj)),
        sorted(set(obj) - set(fixture)),
    )


def bare_customer(client: stripe.StripeClient) -> str:
    return str(client.v1.customers.create({"email": "admin@clinic.example", "name": "Clinic"}).id)


def setup_session(client: stripe.StripeClient, customer: str) -> Any:
    return client.v1.checkout.sessions.create(
        {
            "mode": "setup",
            "customer": customer,
            "currency": "usd",
            "success_url": "https://app.example/billing?session={CHECKOUT_SESSION_ID}",
            "cancel_url": "https://app.example/billing",
            "metadata": {"agency_id": "a1"},
        }
    )


def test_new_objects_have_stripe_fixture_keys(
    raw: Raw, client: stripe.StripeClient, emulator: StripeEmulator, stripe_fixtures: dict[str, Any]
) -> None:
    customer = bare_customer(client)
    session = raw.call(
        "POST",
        "/v1/checkout/sessions",
        data={"mode": "setup", "customer": customer, "currency": "usd",
              "success_url": "https://app.example/ok"},
    ).json()  # fmt: skip
    seti = raw.call("GET", f"/v1/setup_intents/{session['setup_intent']}").json()
    portal = raw.call(
        "POST",
        "/v1/billing_portal/sessions",
        data={"customer": customer, "return_url": "https://app.example"},
    ).json()
    same_keys(session, stripe_fixtures["checkout.session"])
    same_keys(seti, stripe_fixtures["setup_intent"])
    same_keys(portal, stripe_fixtures["billing_portal.session"])
    assert session["url"].startswith(emulator.base_url + "/checkout/cs_test_")
    assert portal["url"].startswith(emulator.base_url + "/portal/bps_")


def test_completing_a_setup_session_attaches_the_card_and_emits_stripes_events(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    customer = bare_customer(client)
    session = setup_session(client, customer)
    assert session.status == "open" and session.mode == "setup"

    emulator.complete_checkout(session.id, "pm_card_mastercard")

    done = client.v1.checkout.sessions.retrieve(
        session.id, {"expand": ["setup_intent.payment_method"]}
    )
    assert done.status == "complete"
    pm = done.setup_intent.payment_method  # type: ignore[union-attr]
    assert pm.customer == customer and pm.card.last4 == "4444"  # type: ignore[union-attr]
    types = [e["type"] for e in emulator.events()]
    for expected in (
        "payment_method.attached",
        "setup_intent.succeeded",
        "checkout.session.completed",
    ):
        assert types.count(expected) == 1
    # Setup mode makes nobody's default: the integration does that.
    assert client.v1.customers.retrieve(customer).invoice_settings.default_payment_method is None
    with pytest.raises(StripeError, match="is complete"):
        emulator.complete_checkout(session.id)  # completed once


def test_a_declined_card_leaves_the_session_open(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    session = setup_session(client, bare_customer(client))
    with pytest.raises(StripeError, match="declined"):
        emulator.complete_checkout(session.id, "pm_card_chargeDeclined")
    assert client.v1.checkout.sessions.retrieve(session.id).status == "open"
    assert not emulator.events("checkout.session.completed")


def test_the_local_checkout_page_saves_a_test_card_and_redirects(
    client: stripe.StripeClient, emulator: StripeEmulator
) -> None:
    session = setup_session(client, bare_customer(client))
    page = requests.get(str(session.url), timeout=10)
    assert page.status_code == 200 and "Save card" in page.text
    declined = requests.post(
        str(session.url), data={"card_number": "4000 0000 0000 0002"}, timeout=10
    )
    assert declined.status_code == 402 and "declined" in declined.text
    saved = requests.post(
        str(session.url),
        data={"card_number": "4242 4242 4242 4242"},
        allow_redirects=False,
        timeout=10,
    )
    assert saved.status_code == 303
    assert saved.headers["Location"] == f"https://app.example/billing?session={session.id}"
    assert client.v1.checkout.sessions.retrieve(session.id).status == "complete"


def trial(client: stripe.StripeClient, catalog: Catalog, customer: str, **extra: Any) -> Any:
    return client.v1.subscriptions.create(
        {
            "customer": customer,
            "items": [{"price": catalog.base.id, "quantity": 1}],
            "trial_period_days": 14,
            "trial_settings": {"end_behavior": {"missing_payment_method": "pause"}},
            **extra,
        }
    )


def test_a_trial_without_a_card_pauses_then_resumes_once_a_card_is_saved(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    customer = bare_customer(client)
    sub = trial(client, catalog, customer)
    assert sub.trial_settings.end_behavior.missing_payment_method == "pause"
    emulator.advance(seconds=11 * DAY + 60)
    assert len(emulator.events("customer.subscription.trial_will_end")) == 1
    emulator.advance(seconds=3 * DAY)
    paused = client.v1.subscriptions.retrieve(sub.id)
    assert paused.status == "paused"
    assert len(emulator.events("customer.subscription.paused")) == 1
    assert [i for i in emulator.objects("invoice") if i["amount_due"] > 0] == []

    session = setup_session(client, customer)
    emulator.complete_checkout(session.id)
    pm = client.v1.setup_intents.retrieve(str(session.setup_intent)).payment_method
    client.v1.customers.update(customer, {"invoice_settings": {"default_payment_method": str(pm)}})
    resumed = client.v1.subscriptions.resume(sub.id)  # billing_cycle_anchor: now
    assert resumed.status == "active"
    assert len(emulator.events("customer.subscription.resumed")) == 1
    paid = [i for i in emulator.objects("invoice") if i["amount_due"] > 0]
    assert [(i["status"], i["amount_due"]) for i in paid] == [("paid", 3000)]


def test_trial_end_now_charges_the_first_invoice_at_once(
    client: stripe.StripeClient, catalog: Catalog, emulator: StripeEmulator
) -> None:
    sub = trial(client, catalog, catalog.customer.id)
    item = sub["items"]["data"][0]
    updated = client.v1.subscriptions.update(
        sub.id,
        {
            "trial_end": "now",
            "items": [{"id": item.id, "quantity": 3}],
            "proration_behavior": "none",
        },
    )
    assert updated.status == "active"
    paid = [i for i in emulator.objects("invoice") if i["amount_due"] > 0]
    assert [(i["status"], i["amount_due"]) for i in paid] == [("paid", 9000)]
