"""Every error code of API.md, produced the way a caller would hit it; nothing changes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from flask import Flask
from werkzeug.test import TestResponse

from seatsvc.app import create_app
from seatsvc.config import Config
from tests import backends
from tests.helpers import Api, snapshot

pytestmark = pytest.mark.usefixtures("runtime")


@contextmanager
def unchanged(config: Config) -> Iterator[None]:
    before = snapshot(config.database_url)
    yield
    assert snapshot(config.database_url) == before, "a failed request changed the database"


def assert_error(response: TestResponse, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True))
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    return body["error"]  # type: ignore[no-any-return]


def test_bad_request_for_a_body_that_is_not_json(api: Api, config: Config) -> None:
    api.agency(seats=2)
    with unchanged(config):
        not_json = api.client.put(
            "/v1/agencies/clinic/seats/base",
            data="quantity=3",
            headers={**api.headers, "Content-Type": "application/x-www-form-urlencoded"},
        )
        assert_error(not_json, 400, "bad_request")
        broken = api.client.put(
            "/v1/agencies/clinic/seats/base",
            data='{"quantity": 3',
            headers={**api.headers, "Content-Type": "application/json"},
        )
        assert_error(broken, 400, "bad_request")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic dGVzdA=="},
        {"Authorization": "Bearer "},
        {"Authorization": "test-token-0123456789"},
    ],
)
def test_unauthorized_without_a_valid_bearer_token(
    api: Api, config: Config, headers: dict[str, str]
) -> None:
    api.agency()
    with unchanged(config):
        for method, path in [
            ("GET", "/v1/agencies/clinic"),
            ("PUT", "/v1/agencies/other"),
            ("GET", "/v1/no-such-route"),
            ("POST", "/v1/invites/accept"),
        ]:
            assert_error(
                api.client.open(path, method=method, headers=headers, json={}), 401, "unauthorized"
            )


def test_every_configured_token_is_accepted_for_rotation(api: Api) -> None:
    api.agency()
    response = api.client.get(
        "/v1/agencies/clinic", headers={"Authorization": "Bearer rotated-token-abcdef"}
    )
    assert response.status_code == 200


def test_not_found_for_unknown_agency_member_and_route(api: Api, config: Config) -> None:
    api.agency(seats=1)
    with unchanged(config):
        assert_error(api.call("GET", "/v1/agencies/nobody"), 404, "not_found")
        assert_error(
            api.call("PUT", "/v1/agencies/nobody/seats/base", {"quantity": 1}), 404, "not_found"
        )
        assert_error(api.call("GET", "/v1/agencies/clinic/members/ghost"), 404, "not_found")
        assert_error(
            api.call("POST", "/v1/agencies/clinic/members/ghost/seat-request"), 404, "not_found"
        )
        assert_error(api.call("GET", "/v1/agencies/bad$id"), 404, "not_found")
        assert_error(
            api.call("PUT", "/v1/agencies/clinic/seats/gold", {"quantity": 1}), 404, "not_found"
        )
        assert_error(api.call("POST", "/v1/invites/accept", {"token": "no.such"}), 404, "not_found")
        assert_error(api.client.get("/nowhere"), 404, "not_found")


def test_method_not_allowed_has_the_error_shape(api: Api) -> None:
    error = assert_error(api.call("DELETE", "/v1/agencies/clinic"), 405, "method_not_allowed")
    assert error["message"]


def test_baa_required_for_every_seat_changing_action(api: Api, config: Config) -> None:
    api.agency(baa=False)
    api.join("m1")
    with unchanged(config):
        for method, path, body in [
            ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": True}),
            ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_cap": 5}),
            ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 3}),
            (
                "POST",
                "/v1/agencies/clinic/members",
                {"member_id": "m2", "email": "m2@staff.example", "source": "invite"},
            ),
        ]:
            assert_error(api.call(method, path, body), 409, "baa_required")
    # Turning Auto-Add OFF (and clearing the cap) is always allowed.
    assert (
        api.ok(
            "PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": False, "auto_add_cap": None}
        )["auto_add_seats"]
        is False
    )


def test_no_capacity_for_invite_reinvite_and_seat_move(api: Api, config: Config) -> None:
    api.agency(seats=1, voice=1)
    assert api.invite("holder").status_code == 201
    assert api.invite("voice-holder", seat_type="voice").status_code == 201
    api.join("late")
    assert api.seat_request("late")["outcome"] == "blocked"
    with unchanged(config):
        assert_error(api.invite("m2"), 409, "no_capacity")
        assert_error(
            api.call("POST", "/v1/agencies/clinic/members/late/reinvite"), 409, "no_capacity"
        )
        assert_error(
            api.call("PUT", "/v1/agencies/clinic/members/holder/seat", {"seat_type": "voice"}),
            409,
            "no_capacity",
        )


def test_below_used_when_reducing_under_the_seats_in_use(api: Api, config: Config) -> None:
    api.agency(seats=3)
    api.invite("a")
    api.invite("b")
    with unchanged(config):
        error = assert_error(
            api.call("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 1}), 409, "below_used"
        )
    assert error["details"] == {"used": 2, "requested": 1}
    assert (
        api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 2})["seats"]["base"][
            "purchased"
        ]
        == 2
    )


def test_invalid_state_cases(api: Api, config: Config) -> None:
    api.agency(seats=2)
    api.agency("other", seats=1)
    api.join("m1")
    api.seat_request("m1")
    api.join("gone")
    api.ok("DELETE", "/v1/agencies/clinic/members/gone")
    with unchanged(config):
        same_id_other_agency = api.call(
            "POST",
            "/v1/agencies/other/members",
            {"member_id": "m1", "email": "m1@staff.example", "source": "auto_join"},
        )
        assert_error(same_id_other_agency, 409, "invalid_state")
        other_email = api.call(
            "POST",
            "/v1/agencies/clinic/members",
            {"member_id": "m1", "email": "else@staff.example", "source": "auto_join"},
        )
        assert_error(other_email, 409, "invalid_state")
        assert_error(
            api.call("POST", "/v1/agencies/clinic/members/gone/seat-request"), 409, "invalid_state"
        )
        assert_error(
            api.call("POST", "/v1/agencies/clinic/members/m1/reinvite"), 409, "invalid_state"
        )
        assert_error(
            api.call("PUT", "/v1/agencies/clinic/members/gone/seat", {"seat_type": "voice"}),
            409,
            "invalid_state",
        )


def test_trial_limit_for_a_trialing_agency(api: Api, config: Config) -> None:
    api.agency(trial=True)
    with unchanged(config):
        error = assert_error(
            api.call("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 2}), 409, "trial_limit"
        )
        assert error["details"]["trial_seat_limit"] == 1
        assert_error(
            api.call("PUT", "/v1/agencies/clinic/seats/voice", {"quantity": 1}), 409, "trial_limit"
        )
    api.ok("PUT", "/v1/agencies/clinic/trial", {"seat_limit": 3})
    assert (
        api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 3})["seats"]["base"][
            "purchased"
        ]
        == 3
    )


def test_payload_too_large(app: Flask, api: Api, config: Config) -> None:
    api.agency()
    huge = {"name": "x" * (config.max_content_length + 10), "admin_emails": ["a@b.example"]}
    with unchanged(config):
        assert_error(api.call("PUT", "/v1/agencies/clinic", huge), 413, "payload_too_large")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": -1}, "quantity"),
        ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 10**9}, "quantity"),
        ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": "3"}, "quantity"),
        ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 2.5}, "quantity"),
        ("PUT", "/v1/agencies/clinic/seats/base", {}, "quantity"),
        ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 2, "extra": 1}, "extra"),
        ("PUT", "/v1/agencies/clinic", {"name": "", "admin_emails": ["a@b.example"]}, "name"),
        ("PUT", "/v1/agencies/clinic", {"name": "n", "admin_emails": []}, "admin_emails"),
        ("PUT", "/v1/agencies/clinic", {"name": "n", "admin_emails": ["nope"]}, "admin_emails"),
        (
            "PUT",
            "/v1/agencies/clinic",
            {"name": "n", "admin_emails": ["a@b.example"] * 21},
            "admin_emails",
        ),
        (
            "PUT",
            "/v1/agencies/clinic",
            {"name": "n", "admin_emails": ["a@b.example"], "stripe_subscription_id": "sub_1"},
            "stripe_customer_id",
        ),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": "yes"}, "auto_add_seats"),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_cap": -2}, "auto_add_cap"),
        ("POST", "/v1/agencies/clinic/baa", {"signed_at": "yesterday"}, "signed_at"),
        ("PUT", "/v1/agencies/clinic/trial", {"seat_limit": 0}, "seat_limit"),
        (
            "POST",
            "/v1/agencies/clinic/members",
            {"member_id": "bad id!", "email": "a@b.example", "source": "invite"},
            "member_id",
        ),
        (
            "POST",
            "/v1/agencies/clinic/members",
            {"member_id": "m9", "email": "not-an-email", "source": "invite"},
            "email",
        ),
        (
            "POST",
            "/v1/agencies/clinic/members",
            {"member_id": "m9", "email": "a@b.example", "source": "sso"},
            "source",
        ),
        (
            "POST",
            "/v1/agencies/clinic/members",
            {"member_id": "m9", "email": "a@b.example", "source": "invite", "seat_type": "gold"},
            "seat_type",
        ),
        ("PUT", "/v1/agencies/clinic/members/m1/seat", {"seat_type": "gold"}, "seat_type"),
        ("POST", "/v1/invites/accept", {}, "token"),
        ("GET", "/v1/agencies/clinic/members?status=asleep", None, "status"),
        ("GET", "/v1/agencies/clinic/seat-events?limit=0", None, "limit"),
        ("GET", "/v1/agencies/clinic/seat-events?before=abc", None, "before"),
    ],
)
def test_validation_errors_name_the_field(
    api: Api, config: Config, method: str, path: str, body: Any, field: str
) -> None:
    api.agency(seats=2)
    api.join("m1")
    api.seat_request("m1")
    with unchanged(config):
        error = assert_error(api.call(method, path, body), 422, "validation_error")
    assert field in error["details"], error["details"]


def test_a_json_body_that_is_not_an_object_is_a_validation_error(api: Api) -> None:
    api.agency()
    assert_error(api.call("PUT", "/v1/agencies/clinic/seats/base", [1, 2]), 422, "validation_error")


def test_database_unreachable_is_503_never_500(config: Config) -> None:
    down = config.with_overrides(database_url="postgresql+psycopg://postgres@127.0.0.1:9/nowhere")
    client = create_app(runtime=backends.build_runtime(down)).test_client()
    headers = {"Authorization": "Bearer test-token-0123456789"}
    assert_error(client.get("/v1/agencies/clinic", headers=headers), 503, "unavailable")
    assert_error(
        client.post("/v1/agencies/clinic/members/m1/seat-request", headers=headers),
        503,
        "unavailable",
    )
    ready = assert_error(client.get("/readyz"), 503, "unavailable")
    assert ready["details"]["database"].startswith("down")
    assert client.get("/healthz").status_code == 200


def test_an_unexpected_exception_still_has_the_error_shape(app: Flask, api: Api) -> None:
    def explode() -> Any:
        raise RuntimeError("boom: secret detail")

    app.add_url_rule("/v1/test-explode", "explode", explode)
    error = assert_error(api.call("GET", "/v1/test-explode"), 500, "internal_error")
    assert "secret detail" not in error["message"]
