"""Payment details and upgrade endpoints: every refusal is the documented error and
changes nothing (the Stripe-backed happy paths are in tests/test_webhooks/test_trial_to_paid.py)."""

from __future__ import annotations

from typing import Any

import pytest

from seatsvc.runtime import Runtime
from tests import backends
from tests.helpers import Api, snapshot
from tests.outbox_rows import set_agency

A = "/v1/agencies/clinic"
URL = "https://app.example/billing"
UPGRADE = {"seats": {"base": 2, "voice": 0}, "return_url": URL}


def trialing(api: Api, runtime: Runtime, baa: bool = True) -> None:
    """A trial agency as the billing worker leaves it (Stripe ids recorded, trialing)."""
    api.agency(trial=True, baa=baa)
    set_agency(
        runtime,
        billing_status="trialing",
        stripe_customer_id="cus_x",
        stripe_subscription_id="sub_x",
    )


def refused(
    api: Api, database: backends.TestDatabase, method: str, path: str, body: Any
) -> tuple[int, Any]:
    before = snapshot(database.url)
    response = api.call(method, path, body)
    assert snapshot(database.url) == before, "a refused request changed the database"
    return response.status_code, (response.get_json() or {}).get("error", {})


BAD_URLS = [
    "",
    "not a url",
    "ftp://files.example/x",
    "javascript:alert(1)",
    "https://",
    "https://app.example/" + "x" * 2000,
    "https://app.example/a b",
    "https://app.example/\x00",
    42,
    None,
]


@pytest.mark.parametrize("path", ["/payment-setup", "/billing-portal", "/upgrade"])
@pytest.mark.parametrize("bad", BAD_URLS)
def test_a_bad_return_url_is_422(
    api: Api, runtime: Runtime, database: backends.TestDatabase, path: str, bad: Any
) -> None:
    trialing(api, runtime)
    body: dict[str, Any] = {"return_url": bad}
    if path == "/upgrade":
        body["seats"] = {"base": 2, "voice": 0}
    status, error = refused(api, database, "POST", A + path, body)
    assert status == 422 and error["code"] == "validation_error"
    assert "return_url" in error["details"]


@pytest.mark.parametrize(
    "seats",
    [
        {"base": -1, "voice": 0},
        {"base": 10_001, "voice": 0},
        {"base": "3", "voice": 0},
        {"base": 1.5, "voice": 0},
        {"base": True, "voice": 0},
        {"base": 0, "voice": 0},
        {"base": 1},
        {"base": 1, "voice": 0, "extra": 1},
        [],
    ],
)
def test_absurd_upgrade_quantities_are_422(
    api: Api, runtime: Runtime, database: backends.TestDatabase, seats: Any
) -> None:
    trialing(api, runtime)
    status, error = refused(
        api, database, "POST", A + "/upgrade", {"seats": seats, "return_url": URL}
    )
    assert status == 422 and error["code"] == "validation_error"
    assert "seats" in error["details"]


def test_upgrade_before_the_baa_is_409_baa_required(
    api: Api, runtime: Runtime, database: backends.TestDatabase
) -> None:
    trialing(api, runtime, baa=False)
    status, error = refused(api, database, "POST", A + "/upgrade", UPGRADE)
    assert (status, error["code"]) == (409, "baa_required")


def test_upgrade_below_the_seats_in_use_is_409_below_used(
    api: Api, runtime: Runtime, database: backends.TestDatabase
) -> None:
    trialing(api, runtime)
    api.join("m1", seat_type="voice")
    set_agency(runtime, trial_seat_limit=2)
    api.ok("PUT", A + "/seats/voice", {"quantity": 1})
    assert api.seat_request("m1")["outcome"] == "activated"
    status, error = refused(api, database, "POST", A + "/upgrade", UPGRADE)  # voice 0 < 1 used
    assert (status, error["code"]) == (409, "below_used")
    assert error["details"] == {"seat_type": "voice", "used": 1, "requested": 0}


@pytest.mark.parametrize("path", ["/payment-setup", "/billing-portal"])
def test_no_stripe_customer_yet_is_409_invalid_state(
    api: Api, database: backends.TestDatabase, path: str
) -> None:
    api.agency(trial=True)  # no billing worker ran: no Stripe customer
    status, error = refused(api, database, "POST", A + path, {"return_url": URL})
    assert (status, error["code"]) == (409, "invalid_state")


def test_upgrade_while_billing_is_being_set_up_is_409_invalid_state(
    api: Api, database: backends.TestDatabase
) -> None:
    api.agency(trial=True)
    status, error = refused(api, database, "POST", A + "/upgrade", UPGRADE)
    assert (status, error["code"]) == (409, "invalid_state")


@pytest.mark.parametrize("path", ["/payment-setup", "/billing-portal", "/upgrade"])
def test_unknown_agency_is_404(api: Api, path: str) -> None:
    response = api.call(
        "POST",
        "/v1/agencies/nobody" + path,
        {"return_url": URL, **({"seats": {"base": 1, "voice": 0}} if path == "/upgrade" else {})},
    )
    assert response.status_code == 404


def test_put_trial_false_on_a_trialing_agency_points_to_upgrade(
    api: Api, runtime: Runtime, database: backends.TestDatabase
) -> None:
    trialing(api, runtime)
    body = {"name": "Clinic", "admin_emails": ["admin@clinic.example"], "trial": False}
    status, error = refused(api, database, "PUT", A, body)
    assert (status, error["code"]) == (409, "invalid_state")
    assert error["details"] == {"upgrade": "/v1/agencies/clinic/upgrade"}
    assert "/upgrade" in error["message"]
    # Without the field (or with true) the update goes through as before.
    api.ok("PUT", A, {"name": "Clinic 2", "admin_emails": ["admin@clinic.example"]})


def test_the_agency_shows_no_payment_method_until_one_is_saved(api: Api) -> None:
    assert api.agency(trial=True)["payment_method"] is None


def test_a_completed_checkout_for_an_upgrade_no_longer_possible_keeps_the_card_only(
    api: Api, runtime: Runtime
) -> None:
    """More voice members than the waiting upgrade buys: the card is kept, the upgrade
    dropped (never a webhook failing forever, never fewer seats than members)."""
    from seatsvc.models import PlanUpgrade
    from seatsvc.services import upgrades

    trialing(api, runtime)
    with runtime.db.session() as session, session.begin():
        session.add(
            PlanUpgrade(agency_id="clinic", base=1, voice=0, status="awaiting_payment_method",
                        request_key="k", checkout_session_id="cs_test_1")
        )  # fmt: skip
    set_agency(runtime, trial_seat_limit=2)
    api.ok("PUT", A + "/seats/voice", {"quantity": 1})
    api.join("v1", seat_type="voice")
    assert api.seat_request("v1")["outcome"] == "activated"
    card = {"id": "pm_1", "brand": "visa", "last4": "4242", "exp_month": 1, "exp_year": 2030}

    charged = runtime.transaction(lambda s: upgrades.record_card(s, "clinic", card, "cs_test_1"))

    assert charged is None
    agency = api.ok("GET", A)
    assert agency["payment_method"] == {
        k: card[k] for k in ("brand", "last4", "exp_month", "exp_year")
    }
    assert agency["seats"]["voice"]["purchased"] == 1
    with runtime.db.session() as session:
        assert session.query(PlanUpgrade).one().status == "superseded"
