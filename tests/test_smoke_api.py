"""The happy paths of API.md, as the main product calls them."""

from __future__ import annotations

from tests.helpers import Api


def test_agency_created_then_updated(api: Api) -> None:
    created = api.call(
        "PUT", "/v1/agencies/a-1", {"name": "North", "admin_emails": ["a@n.example"]}
    )
    assert created.status_code == 201
    body = created.get_json()
    assert body["auto_add_seats"] is False
    assert body["billing_status"] == "provisioning"
    assert body["trial_seat_limit"] == 1
    assert body["seats"]["base"] == {
        "purchased": 1,
        "used": 0,
        "available": 1,
        "billed": None,
        "sync": "pending",
    }
    updated = api.call(
        "PUT", "/v1/agencies/a-1", {"name": "North 2", "admin_emails": ["b@n.example"]}
    )
    assert updated.status_code == 200
    assert updated.get_json()["name"] == "North 2"
