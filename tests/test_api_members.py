"""Members through the API: first-login seat requests, invites, re-invites, moves, removal."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from seatsvc.models import Member, utcnow
from seatsvc.runtime import Runtime
from tests import outbox_rows as rows
from tests.helpers import Api


def test_free_seat_activates_on_first_login(api: Api, runtime: Runtime) -> None:
    api.agency(seats=2)
    joined = api.join("m1")
    assert joined["status"] == "pending_login"
    assert api.seats()["used"] == 0, "auto-join holds no seat"
    answer = api.seat_request("m1")
    assert answer["outcome"] == "activated" and answer["reason"] is None
    assert answer["member"]["status"] == "active" and answer["member"]["activated_at"]
    assert api.seats() == {
        "purchased": 2,
        "used": 1,
        "available": 1,
        "billed": None,
        "sync": "pending",
    }
    assert rows.notifications(runtime) == []


def test_full_with_auto_add_off_blocks_and_emails_admins(api: Api, runtime: Runtime) -> None:
    api.agency(seats=0)
    api.join("m1")
    answer = api.seat_request("m1")
    assert (answer["outcome"], answer["reason"]) == ("blocked", "no_capacity")
    assert answer["member"]["blocked_reason"] == "no_capacity"
    [blocked] = rows.notifications(runtime)
    assert blocked.kind == "member_blocked" and blocked.member_id == "m1"
    assert blocked.payload["reason"] == "no_capacity"
    # A retried login stays blocked and owes no second email.
    again = api.seat_request("m1")
    assert (again["outcome"], again["reason"]) == ("blocked", "no_capacity")
    assert len(rows.notifications(runtime)) == 1


def test_full_with_auto_add_on_adds_one_seat(api: Api, runtime: Runtime) -> None:
    api.agency(seats=1, auto_add=True)
    api.join("m1")
    api.join("m2", seat_type="base")
    api.seat_request("m1")
    version_before = rows.billing_row(runtime).desired_version
    answer = api.seat_request("m2")
    assert answer["outcome"] == "auto_added" and answer["member"]["status"] == "active"
    assert api.seats()["purchased"] == 2 and api.seats()["used"] == 2
    assert rows.billing_row(runtime).desired_version == version_before + 1
    assert rows.billing_row(runtime).status == "pending"
    [added] = rows.notifications(runtime, "seat_auto_added")
    assert added.payload == {"seat_type": "base", "seats_added": 1, "purchased_after": 2}
    events = api.ok("GET", "/v1/agencies/clinic/seat-events")["events"]
    assert events[0]["type"] == "auto_added" and events[0]["member_id"] == "m2"
    assert (events[0]["delta"], events[0]["purchased_after"]) == (1, 2)
    # Retried: already active, nothing added twice.
    assert api.seat_request("m2")["outcome"] == "already_active"
    assert api.seats()["purchased"] == 2
    assert rows.billing_row(runtime).desired_version == version_before + 1


def test_auto_add_works_for_voice_seats(api: Api) -> None:
    api.agency(seats=0, auto_add=True)
    api.join("v1", seat_type="voice")
    assert api.seat_request("v1")["outcome"] == "auto_added"
    assert api.seats(seat_type="voice")["purchased"] == 1
    assert api.seats(seat_type="base")["purchased"] == 0


def test_auto_add_cap_blocks_with_its_reason(api: Api) -> None:
    api.agency(seats=1, auto_add=True)
    api.ok("PATCH", "/v1/agencies/clinic/settings", {"auto_add_cap": 2})
    for member in ("a", "b", "c"):
        api.join(member)
    outcomes = [api.seat_request(m)["outcome"] for m in ("a", "b")]
    assert outcomes == ["activated", "auto_added"]
    capped = api.seat_request("c")
    assert (capped["outcome"], capped["reason"]) == ("blocked", "auto_add_cap_reached")
    assert api.seats()["purchased"] == 2


def test_trial_limit_blocks_auto_add_during_the_trial(api: Api) -> None:
    api.agency(trial=True, auto_add=True)
    api.join("a")
    api.join("b")
    assert api.seat_request("a")["outcome"] == "activated"
    answer = api.seat_request("b")
    assert (answer["outcome"], answer["reason"]) == ("blocked", "trial_limit")


@pytest.mark.parametrize("status", ["canceled", "unpaid"])
def test_inactive_subscription_blocks_even_with_free_seats(
    api: Api, runtime: Runtime, status: str
) -> None:
    api.agency(seats=3)
    rows.set_agency(runtime, billing_status=status)
    api.join("m1")
    answer = api.seat_request("m1")
    assert (answer["outcome"], answer["reason"]) == ("blocked", "subscription_inactive")


def test_past_due_never_grows_the_bill(api: Api, runtime: Runtime) -> None:
    api.agency(seats=1, auto_add=True)
    rows.set_agency(runtime, billing_status="past_due")
    api.join("a")
    api.join("b")
    assert api.seat_request("a")["outcome"] == "activated"
    answer = api.seat_request("b")
    assert (answer["outcome"], answer["reason"]) == ("blocked", "subscription_inactive")


def test_auto_join_is_idempotent(api: Api) -> None:
    api.agency()
    first = api.join("m1")
    again = api.call(
        "POST",
        "/v1/agencies/clinic/members",
        {"member_id": "m1", "email": "M1@Staff.Example", "source": "auto_join"},
    )
    assert again.status_code == 200 and again.get_json() == first


def test_invite_holds_a_seat_and_emails_the_clinician(api: Api, runtime: Runtime) -> None:
    api.agency(seats=1)
    created = api.invite("m1")
    assert created.status_code == 201 and created.get_json()["status"] == "invited"
    assert api.seats()["used"] == 1
    [invite] = rows.notifications(runtime, "invite")
    assert invite.member_id == "m1" and invite.payload["reinvite"] is False
    # Repeating the invite returns the same member and sends nothing new.
    repeat = api.invite("m1")
    assert repeat.status_code == 200 and repeat.get_json()["status"] == "invited"
    assert len(rows.notifications(runtime, "invite")) == 1
    # The invited member logs in: activated, still one seat.
    answer = api.seat_request("m1")
    assert answer["outcome"] == "activated" and api.seats()["used"] == 1


def test_explicit_invite_never_auto_adds(api: Api) -> None:
    api.agency(seats=0, auto_add=True)
    response = api.invite("m1")
    assert response.status_code == 409 and response.get_json()["error"]["code"] == "no_capacity"
    assert api.seats()["purchased"] == 0


def test_accept_link_is_single_use(api: Api, runtime: Runtime) -> None:
    api.agency(seats=1)
    api.invite("m1")
    token = rows.latest_token(runtime, "m1")
    accepted = api.ok("POST", "/v1/invites/accept", {"token": token})
    assert accepted["status"] == "active" and accepted["activated_at"]
    used = api.call("POST", "/v1/invites/accept", {"token": token})
    assert used.status_code == 410 and used.get_json()["error"]["code"] == "invite_expired"
    assert api.seats()["used"] == 1
    # The stored hash alone cannot accept: only the HMAC'd token works.
    stored = rows.invites_of(runtime, "m1")[0].token_hash
    assert api.call("POST", "/v1/invites/accept", {"token": stored}).status_code == 404


def test_expired_link_then_reinvite_sends_a_fresh_one(api: Api, runtime: Runtime) -> None:
    api.agency(seats=1)
    api.invite("m1")
    old_token = rows.latest_token(runtime, "m1")
    rows.expire_invites(runtime, "m1")
    expired = api.call("POST", "/v1/invites/accept", {"token": old_token})
    assert expired.status_code == 410
    again = api.ok("POST", "/v1/agencies/clinic/members/m1/reinvite")
    assert again["status"] == "invited" and api.seats()["used"] == 1
    assert len(rows.notifications(runtime, "invite")) == 2
    new_token = rows.latest_token(runtime, "m1")
    assert new_token != old_token
    assert api.ok("POST", "/v1/invites/accept", {"token": new_token})["status"] == "active"


def test_blocked_member_unblocked_by_adding_a_seat_and_reinviting(
    api: Api, runtime: Runtime
) -> None:
    api.agency(seats=0)
    api.join("m1")
    assert api.seat_request("m1")["outcome"] == "blocked"
    refused = api.call("POST", "/v1/agencies/clinic/members/m1/reinvite")
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "no_capacity"
    api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 1})
    reinvited = api.ok("POST", "/v1/agencies/clinic/members/m1/reinvite")
    assert reinvited["status"] == "invited" and reinvited["blocked_reason"] is None
    [email] = rows.notifications(runtime, "invite")
    assert email.payload["reinvite"] is True
    token = rows.latest_token(runtime, "m1")
    assert api.ok("POST", "/v1/invites/accept", {"token": token})["status"] == "active"


def test_removal_frees_the_seat_but_keeps_purchased(api: Api, runtime: Runtime) -> None:
    api.agency(seats=1)
    api.invite("m1")
    version = rows.billing_row(runtime).desired_version
    token = rows.latest_token(runtime, "m1")
    removed = api.ok("DELETE", "/v1/agencies/clinic/members/m1")
    assert removed["status"] == "removed"
    assert api.seats() == {
        "purchased": 1,
        "used": 0,
        "available": 1,
        "billed": None,
        "sync": "pending",
    }
    assert api.ok("DELETE", "/v1/agencies/clinic/members/m1")["status"] == "removed"
    assert rows.billing_row(runtime).desired_version == version, "removal never changes Stripe"
    assert api.call("POST", "/v1/invites/accept", {"token": token}).status_code == 410
    # The freed seat serves the next clinician.
    api.join("m2")
    assert api.seat_request("m2")["outcome"] == "activated"


def test_seat_move_checks_the_target_pool(api: Api) -> None:
    api.agency(seats=1, voice=1)
    api.join("m1")
    api.seat_request("m1")
    moved = api.ok("PUT", "/v1/agencies/clinic/members/m1/seat", {"seat_type": "voice"})
    assert moved["seat_type"] == "voice"
    assert api.seats()["used"] == 0 and api.seats(seat_type="voice")["used"] == 1
    same = api.ok("PUT", "/v1/agencies/clinic/members/m1/seat", {"seat_type": "voice"})
    assert same["seat_type"] == "voice"


def test_list_and_get_members(api: Api) -> None:
    api.agency(seats=1)
    api.join("a")
    api.join("b")
    api.seat_request("a")
    everyone = api.ok("GET", "/v1/agencies/clinic/members")["members"]
    assert [m["id"] for m in everyone] == ["a", "b"]
    active = api.ok("GET", "/v1/agencies/clinic/members?status=active")["members"]
    assert [m["id"] for m in active] == ["a"]
    member = api.ok("GET", "/v1/agencies/clinic/members/b")
    assert set(member) >= {
        "id",
        "email",
        "seat_type",
        "status",
        "source",
        "created_at",
        "activated_at",
        "blocked_reason",
    }


def _page_through(api: Api, query: str) -> tuple[list[str], int]:
    """Follow `next` (passed back as `before`) to the end: the ids seen and the pages read."""
    seen: list[str] = []
    pages = 0
    cursor = None
    while True:
        suffix = "" if cursor is None else f"&before={cursor}"
        page = api.ok("GET", f"/v1/agencies/clinic/members?{query}{suffix}")
        pages += 1
        seen += [member["id"] for member in page["members"]]
        cursor = page["next"]
        if cursor is None:
            return seen, pages


def test_members_are_listed_a_page_at_a_time(api: Api, runtime: Runtime) -> None:
    api.agency(seats=1)
    api.agency("other")
    api.join("elsewhere", "other")
    # One timestamp for all: the order (and so the cursor) must also hold on ties.
    same_time = utcnow()
    with runtime.db.session() as session, session.begin():
        session.add_all(
            Member(
                id=f"m{n:03d}",
                agency_id="clinic",
                email=f"m{n}@staff.example",
                source="auto_join",
                status="active" if n % 10 == 0 else "pending_login",
                created_at=same_time,
            )
            for n in range(105)
        )
    first = api.ok("GET", "/v1/agencies/clinic/members")
    assert len(first["members"]) == 100 and first["next"] is not None  # a bounded default page
    everyone, pages = _page_through(api, "limit=40")
    assert everyone == [f"m{n:03d}" for n in range(105)] and pages == 3
    active, _ = _page_through(api, "status=active&limit=4")
    assert active == [f"m{n:03d}" for n in range(0, 105, 10)]
    last = api.ok("GET", "/v1/agencies/clinic/members?limit=500")
    assert len(last["members"]) == 105 and last["next"] is None


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=501", "limit=x", "before=nobody", "before=elsewhere", "before=a%00"]
)
def test_a_bad_page_request_is_a_validation_error(api: Api, query: str) -> None:
    api.agency()
    api.agency("other")
    api.join("elsewhere", "other")  # a member id, but of another agency's list
    response = api.call("GET", f"/v1/agencies/clinic/members?{query}")
    assert response.status_code == 422, response.get_json()
    assert set(response.get_json()["error"]["details"]) == {query.split("=")[0]}


def test_removed_member_can_be_invited_again(api: Api, runtime: Runtime) -> None:
    api.agency(seats=1)
    api.join("m1")
    api.seat_request("m1")
    api.ok("DELETE", "/v1/agencies/clinic/members/m1")
    back = api.invite("m1")
    assert back.status_code == 200 and back.get_json()["status"] == "invited"
    assert api.seats()["used"] == 1


def test_the_member_list_page_is_documented(client: FlaskClient) -> None:
    operation = client.get("/openapi.json").get_json()["paths"]["/v1/agencies/{agency_id}/members"]
    listed = operation["get"]
    assert {"status", "limit", "before"} <= {p["name"] for p in listed["parameters"]}
    schema = listed["responses"]["200"]["content"]["application/json"]["schema"]
    components = client.get("/openapi.json").get_json()["components"]["schemas"]
    name = schema["$ref"].rsplit("/", 1)[-1]
    assert {"members", "next"} <= set(components[name]["properties"])
