"""Issue #14, hostile input: no request reaches a 500, none changes anything it should not.

Deep JSON, lone surrogates and NUL bytes, booleans and integers of the wrong JSON type,
bodies over the limit on endpoints that never read one, Flask's and werkzeug's own
errors, addresses the notifier could not deliver, SQL parameters in error messages.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import Gone, InternalServerError, TooManyRequests

from seatsvc.app import create_app
from seatsvc.config import Config
from seatsvc.db import make_engine
from seatsvc.redaction import redact
from seatsvc.runtime import Runtime
from tests.helpers import Api
from tests.test_api_errors import assert_error, unchanged

pytestmark = pytest.mark.usefixtures("runtime")

ROOT = Path(__file__).resolve().parent.parent
DEEP_JSON = "[" * 10_000 + "]" * 10_000
PATH_VALUES = {"agency_id": "clinic", "member_id": "m1", "seat_type": "base"}


def body_endpoints(app: Flask) -> list[tuple[str, str]]:
    """Every /v1 route whose view loads a JSON body (read from the routes themselves)."""
    found = []
    for rule in app.url_map.iter_rules():
        doc = getattr(app.view_functions[rule.endpoint], "__openapi__", None)
        if doc is None or doc.body is None or not rule.rule.startswith("/v1/"):
            continue
        path = rule.rule
        for name, value in PATH_VALUES.items():
            for converter in ("id", "seat_type"):
                path = path.replace(f"<{converter}:{name}>", value)
        found.extend((method, path) for method in sorted(rule.methods or ()) if method != "OPTIONS")
    return found


def seeded(api: Api) -> None:
    api.agency(seats=2)
    api.join("m1")
    api.seat_request("m1")


# ---- 1. no input reaches a 500 ----------------------------------------------------------


def test_deeply_nested_json_is_a_bad_request_on_every_body_endpoint(
    app: Flask, api: Api, config: Config
) -> None:
    seeded(api)
    endpoints = body_endpoints(app)
    assert len(endpoints) >= 7, endpoints
    with unchanged(config):
        for method, path in endpoints:
            response = api.client.open(
                path,
                method=method,
                data=DEEP_JSON,
                headers={**api.headers, "Content-Type": "application/json"},
            )
            assert_error(response, 400, "bad_request")


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PUT", "/v1/agencies/clinic", {"name": "\ud800", "admin_emails": ["a@b.example"]}, "name"),
        ("PUT", "/v1/agencies/new", {"name": "a\udfffb", "admin_emails": ["a@b.example"]}, "name"),
        (
            "PUT",
            "/v1/agencies/new",
            {"name": "n", "admin_emails": ["a\ud800@b.example"]},
            "admin_emails",
        ),
        (
            "PUT",
            "/v1/agencies/new",
            {"name": "n", "admin_emails": ["a@b.example"], "stripe_customer_id": "cus_\x00"},
            "stripe_customer_id",
        ),
        ("POST", "/v1/invites/accept", {"token": "\ud800"}, "token"),
        ("POST", "/v1/invites/accept", {"token": "abc\x00.def"}, "token"),
        (
            "POST",
            "/v1/agencies/clinic/members",
            {"member_id": "m\x00", "email": "a@b.example", "source": "invite"},
            "member_id",
        ),
        (
            "POST",
            "/v1/agencies/clinic/members",
            {"member_id": "m9", "email": "a@b.example", "source": "invite\ud800"},
            "source",
        ),
        ("PUT", "/v1/agencies/clinic/members/m1/seat", {"seat_type": "\x00"}, "seat_type"),
        (
            "POST",
            "/v1/agencies/clinic/baa",
            {"signed_at": "2024-01-01T00:00:00\ud800"},
            "signed_at",
        ),
    ],
)
def test_lone_surrogates_and_nul_are_validation_errors(
    api: Api, config: Config, method: str, path: str, body: Any, field: str
) -> None:
    assert_refused_field(api, config, method, path, body, field)


# ---- 2. booleans are JSON true/false, integers JSON integers -----------------------------


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": 1}, "auto_add_seats"),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": 0}, "auto_add_seats"),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": 1.0}, "auto_add_seats"),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": "true"}, "auto_add_seats"),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": None}, "auto_add_seats"),
        (
            "PUT",
            "/v1/agencies/new",
            {"name": "n", "admin_emails": ["a@b.example"], "trial": 0},
            "trial",
        ),
        (
            "PUT",
            "/v1/agencies/new",
            {"name": "n", "admin_emails": ["a@b.example"], "trial": 1},
            "trial",
        ),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_cap": True}, "auto_add_cap"),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_cap": 3.0}, "auto_add_cap"),
        ("PATCH", "/v1/agencies/clinic/settings", {"auto_add_cap": "3"}, "auto_add_cap"),
        ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": True}, "quantity"),
        ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 1.0}, "quantity"),
        ("PUT", "/v1/agencies/clinic/seats/base", {"quantity": "3"}, "quantity"),
        ("PUT", "/v1/agencies/clinic/trial", {"seat_limit": True}, "seat_limit"),
        ("PUT", "/v1/agencies/clinic/trial", {"seat_limit": 2.0}, "seat_limit"),
    ],
)
def test_only_json_booleans_and_integers_are_accepted(
    api: Api, config: Config, method: str, path: str, body: Any, field: str
) -> None:
    assert_refused_field(api, config, method, path, body, field)


def test_real_booleans_still_work(api: Api) -> None:
    seeded(api)
    settings = api.ok("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": True})
    assert settings["auto_add_seats"] is True
    body = {"name": "Paid", "admin_emails": ["a@paid.example"], "trial": False}
    assert api.ok("PUT", "/v1/agencies/paid", body, status=201)["trial_ends_at"] is None


# ---- 3. every endpoint enforces the body limit ------------------------------------------


# werkzeug then ignores the Content-Length its test client computes, as for a real chunked body.
CHUNKED = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
NO_BODY_ENDPOINTS = [
    ("POST", "/v1/agencies/clinic/members/m2/seat-request"),
    ("POST", "/v1/agencies/clinic/reconcile"),
    ("DELETE", "/v1/agencies/clinic/members/m1"),
    ("POST", "/v1/agencies/clinic/members/m1/reinvite"),
    ("GET", "/v1/agencies/clinic"),
]


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_body_over_the_limit_is_413_on_every_endpoint(
    api: Api, config: Config, chunked: bool
) -> None:
    seeded(api)
    api.join("m2")
    big = b"x" * (config.max_content_length + 1)
    with unchanged(config):
        for method, path in NO_BODY_ENDPOINTS:
            if chunked:
                # A chunked body has no Content-Length; gunicorn marks its end itself.
                response = api.client.open(
                    path,
                    method=method,
                    input_stream=io.BytesIO(big),
                    headers={**api.headers, **CHUNKED},
                    environ_overrides={"wsgi.input_terminated": True},
                )
            else:
                response = api.call(method, path, data=big, content_type="application/json")
            assert_error(response, 413, "payload_too_large")


def test_a_body_up_to_the_limit_still_works(api: Api, config: Config) -> None:
    seeded(api)
    api.join("m2")
    reply = api.call("POST", "/v1/agencies/clinic/members/m2/seat-request", data=b"x" * 100)
    assert reply.status_code == 200, reply.get_json()
    exactly = b" " * config.max_content_length  # chunked, exactly at the limit: not over it
    reply = api.client.post(
        "/v1/agencies/clinic/members/m2/reinvite",
        input_stream=io.BytesIO(exactly),
        headers={**api.headers, **CHUNKED},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert reply.status_code == 409, reply.get_json()  # past the limit check: m2 is active


# ---- 4. Flask's and werkzeug's own errors -----------------------------------------------


def test_routing_never_redirects(api: Api, config: Config) -> None:
    seeded(api)
    with unchanged(config):
        for path in ("/v1//agencies/clinic", "/v1/agencies//clinic", "/v1/agencies/clinic/x/"):
            response = api.call("GET", path)
            assert "Location" not in response.headers, path
            assert_error(response, 404, "not_found")
        # A trailing slash on a route without one is answered as the route, not redirected.
        assert api.call("GET", "/healthz/").status_code == 200
        assert api.call("GET", "/v1/agencies/clinic/").get_json()["id"] == "clinic"


def test_method_not_allowed_keeps_the_allow_header(api: Api) -> None:
    response = api.call("DELETE", "/v1/agencies/clinic")
    assert_error(response, 405, "method_not_allowed")
    assert {"GET", "PUT"} <= {m.strip() for m in response.headers["Allow"].split(",")}


def test_any_http_exception_has_the_error_shape_and_its_headers(app: Flask, api: Api) -> None:
    def gone() -> Any:
        raise Gone()

    def slow_down() -> Any:
        raise TooManyRequests(retry_after=7)

    def broken() -> Any:
        raise InternalServerError()

    app.add_url_rule("/v1/test-gone", "gone", gone)
    app.add_url_rule("/v1/test-429", "slow_down", slow_down)
    app.add_url_rule("/v1/test-500", "broken", broken)
    assert_error(api.call("GET", "/v1/test-gone"), 410, "gone")
    assert_error(api.call("GET", "/v1/test-500"), 500, "internal_error")  # as API.md names it
    limited = api.call("GET", "/v1/test-429")
    assert_error(limited, 429, "too_many_requests")
    assert limited.headers["Retry-After"] == "7"
    assert limited.content_type == "application/json"


def test_401_carries_a_bearer_challenge(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = api.client.get("/v1/agencies/clinic", headers=headers)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_the_dashboard_401_keeps_its_basic_challenge(runtime: Runtime) -> None:
    from tests.test_ops.conftest import ops_runtime

    client = create_app(runtime=ops_runtime(runtime)).test_client()
    response = client.get("/ops/rq/")
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


# ---- 8. addresses the service can always deliver and redact -----------------------------


@pytest.mark.parametrize(
    "email",
    [
        "x@[127.0.0.1]",
        "x@[IPv6:::1]",
        "okü@exämple.com",
        "ök@clinic.example",
        '"quoted"@clinic.example',
        '"a b"@clinic.example',
        "a..b@clinic.example",
        ".a@clinic.example",
        "a.@clinic.example",
        "a@localhost",
        "a@-bad.clinic.example",
        "a@bad-.clinic.example",
        "a@clinic..example",
        "a@clinic.example.",
        "a@clinic.123",
        "a@127.0.0.1",
        "a@under_score.example",
        "a b@clinic.example",
        "a@b@clinic.example",
        "x" * 65 + "@clinic.example",
        "a@" + "x" * 64 + ".example",
    ],
)
def test_undeliverable_addresses_are_validation_errors(
    api: Api, config: Config, email: str
) -> None:
    seeded(api)
    with unchanged(config):
        member = {"member_id": "m9", "email": email, "source": "auto_join"}
        error = assert_error(
            api.call("POST", "/v1/agencies/clinic/members", member), 422, "validation_error"
        )
        assert error["details"]["email"], error
        agency = {"name": "n", "admin_emails": [email]}
        error = assert_error(api.call("PUT", "/v1/agencies/new", agency), 422, "validation_error")
        assert "admin_emails" in error["details"], error


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("okay@exämple.com", "okay@xn--exmple-cua.com"),
        ("first.last+tag@clinic.example", "first.last+tag@clinic.example"),
        ("o'brien@sub.clinic.example", "o'brien@sub.clinic.example"),
        ("A_B-c@Clinic.Example", "A_B-c@Clinic.Example"),
    ],
)
def test_deliverable_addresses_are_kept_in_ascii_and_redacted(
    api: Api, given: str, stored: str
) -> None:
    seeded(api)
    member = api.ok(
        "POST",
        "/v1/agencies/clinic/members",
        {"member_id": "m9", "email": given, "source": "auto_join"},
        status=201,
    )
    assert member["email"] == stored
    assert stored.isascii()
    assert redact(f"sending to {stored} now") == "sending to [email] now"


# ---- 9. no SQL parameters in logs -------------------------------------------------------


def test_a_database_error_does_not_carry_its_parameters(config: Config) -> None:
    engine = make_engine(config.database_url)
    try:
        with pytest.raises(DBAPIError) as raised, engine.connect() as connection:
            connection.execute(
                text("SELECT * FROM no_such_table WHERE email = :email"),
                {"email": "secret.person@clinic.example"},
            )
    finally:
        engine.dispose()
    assert "secret.person" not in str(raised.value)
    assert "no_such_table" in str(raised.value)  # the statement itself is still there


def test_gunicorn_access_log_never_prints_the_basic_auth_user(tmp_path: Path) -> None:
    """The Procfile sets no format of its own, so the config file's is the one used."""
    script = (
        "import json, seatsvc.gunicorn_conf as c; print(json.dumps({k: getattr(c, k) for k in "
        "('access_log_format', 'limit_request_line', 'limit_request_field_size')}))"
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}  # no stray temp dir
    found = json.loads(
        subprocess.run(
            [sys.executable, "-c", script],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
            env=env,
            cwd=ROOT,
        ).stdout
    )
    assert "%(u)s" not in found["access_log_format"]
    assert "%(s)s" in found["access_log_format"] and "%(r)s" in found["access_log_format"]
    assert 0 < found["limit_request_line"] <= 8190
    assert 0 < found["limit_request_field_size"] <= 8190
    procfile = (ROOT / "Procfile").read_text().splitlines()
    web = next(line for line in procfile if line.startswith("web:"))
    assert "--access-logformat" not in web and "--access-logfile" in web


def assert_refused_field(
    api: Api, config: Config, method: str, path: str, body: Any, field: str
) -> None:
    """A 422 naming `field`, and nothing changed."""
    seeded(api)
    with unchanged(config):
        error = assert_error(api.call(method, path, body), 422, "validation_error")
    assert field in error["details"], error["details"]
