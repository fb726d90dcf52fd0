"""Agencies through the API: creation, BAA, settings, seats, trial, ledger, reconcile."""

from __future__ import annotations

from seatsvc.runtime import Runtime
from tests import outbox_rows as rows
from tests.helpers import Api


def test_create_without_stripe_ids_starts_a_trial_with_one_base_seat(
    api: Api, runtime: Runtime
) -> None:
    body = api.ok(
        "PUT", "/v1/agencies/new", {"name": "New", "admin_emails": ["a@new.example"]}, status=201
    )
    assert body["billing_status"] == "provisioning" and body["trial_ends_at"]
    assert body["seats"]["base"]["purchased"] == 1 and body["seats"]["voice"]["purchased"] == 0
    assert rows.billing_row(runtime, "new").status == "pending", "the worker must provision"


def test_create_linked_to_an_existing_subscription(api: Api, runtime: Runtime) -> None:
    body = api.ok(
        "PUT",
        "/v1/agencies/linked",
        {
            "name": "L",
            "admin_emails": ["a@l.example"],
            "stripe_customer_id": "cus_1",
            "stripe_subscription_id": "sub_1",
        },
        status=201,
    )
    assert body["stripe_subscription_id"] == "sub_1" and body["trial_ends_at"] is None
    assert body["seats"]["base"]["purchased"] == 0, "Stripe's quantities arrive with the link"
    moved = api.call(
        "PUT",
        "/v1/agencies/linked",
        {"name": "L", "admin_emails": ["a@l.example"], "stripe_customer_id": "cus_2"},
    )
    assert moved.status_code == 409 and moved.get_json()["error"]["code"] == "invalid_state"


def test_baa_signature_is_kept_once(api: Api) -> None:
    api.agency(baa=False)
    first = api.ok("POST", "/v1/agencies/clinic/baa", {"signed_at": "2026-01-02T03:04:05Z"})
    assert first["baa_signed_at"].startswith("2026-01-02T03:04:05")
    again = api.ok("POST", "/v1/agencies/clinic/baa", {})
    assert again["baa_signed_at"] == first["baa_signed_at"]
    future = api.call("POST", "/v1/agencies/clinic/baa", {"signed_at": "2999-01-01T00:00:00Z"})
    assert future.status_code == 422


def test_auto_add_defaults_off_and_toggles_after_baa(api: Api) -> None:
    created = api.agency(baa=False)
    assert created["auto_add_seats"] is False and created["auto_add_cap"] is None
    api.ok("POST", "/v1/agencies/clinic/baa", {})
    on = api.ok(
        "PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": True, "auto_add_cap": 12}
    )
    assert (on["auto_add_seats"], on["auto_add_cap"]) == (True, 12)
    off = api.ok("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": False})
    assert (off["auto_add_seats"], off["auto_add_cap"]) == (False, 12)


def test_buying_and_reducing_seats_writes_the_ledger_and_one_sync_intent(
    api: Api, runtime: Runtime
) -> None:
    api.agency()
    start = rows.billing_row(runtime).desired_version
    api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 5})
    api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 5})  # no-op
    api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 3})
    assert rows.billing_row(runtime).desired_version == start + 2
    events = api.ok("GET", "/v1/agencies/clinic/seat-events")["events"]
    assert [(e["type"], e["delta"], e["purchased_after"]) for e in events] == [
        ("reduced", -2, 3),
        ("purchased", 5, 5),
    ]
    assert api.seats()["purchased"] == 3


def test_seat_events_paginate_newest_first(api: Api) -> None:
    api.agency()
    for quantity in range(1, 8):
        api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": quantity})
    seen: list[int] = []
    cursor = None
    while True:
        query = "?limit=3" + (f"&before={cursor}" if cursor else "")
        page = api.ok("GET", f"/v1/agencies/clinic/seat-events{query}")
        seen += [event["purchased_after"] for event in page["events"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1]


def test_trial_seat_limit_is_raised_by_ops(api: Api) -> None:
    api.agency(trial=True)
    assert api.ok("PUT", "/v1/agencies/clinic/trial", {"seat_limit": 5})["trial_seat_limit"] == 5


def test_reconcile_is_queued(api: Api, runtime: Runtime) -> None:
    api.agency()
    answer = api.ok("POST", "/v1/agencies/clinic/reconcile", status=202)
    assert answer["agency_id"] == "clinic" and answer["reconcile_requested_at"]
    assert rows.billing_row(runtime).reconcile_requested_at is not None
