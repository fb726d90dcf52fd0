"""Fuzz every operation of `/openapi.json` in-process: never a 5xx, always the error shape.

Schemathesis generates valid (positive) and invalid (negative) requests from
the very document callers code against. Path ids are drawn mostly from seeded
agencies and members in every status, so the stateful paths (seat requests,
re-invites, seat moves, accepting real invite tokens) are reached, not only the
404s; the rest are generated ids. A third of the cases also carry a NUL byte
or a lone surrogate in one of their strings (schemathesis generates NUL itself,
but never a lone surrogate: it cannot be sent as UTF-8, yet a JSON body can
carry one as `\ud800`).

Two runs: the default one is short (fuzzing only, a few dozen cases per
operation); the `slow` one runs every phase schemathesis has for a single
operation (its examples, its coverage cases, then fuzzing with >= 300 cases
per operation) on PostgreSQL, where NUL and surrogates fail. The document has
no OpenAPI links, so there is no stateful phase to run.
`SEATSVC_FUZZ_SCALE=10` for a longer hunt.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.generation.hypothesis.builder import (
    HypothesisTestConfig,
    HypothesisTestMode,
    create_test,
)
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import select

from seatsvc.app import create_app
from seatsvc.config import Config
from seatsvc.models import Invite
from seatsvc.openapi import build_spec
from seatsvc.runtime import Runtime
from seatsvc.services.invites import invite_token
from tests.backends import build_runtime
from tests.conftest import API_TOKEN, SECRET_KEY
from tests.helpers import Api

MAX_EXAMPLES = {GenerationMode.POSITIVE: 20, GenerationMode.NEGATIVE: 12}
# The slow run: >= 300 fuzzed cases per operation (split between the modes it has).
DEEP_EXAMPLES = 300
# A longer hunt (a nightly job, or after touching validation): SEATSVC_FUZZ_SCALE=10.
FUZZ_SCALE = float(os.environ.get("SEATSVC_FUZZ_SCALE", "1"))
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
CHECKS = {
    GenerationMode.POSITIVE: [not_a_server_error, *CONFORMANCE],
    GenerationMode.NEGATIVE: [not_a_server_error, negative_data_rejection, *CONFORMANCE],
}
AGENCY_IDS = ("clinic", "trial-clinic")
# Each seeded member and its agency: one per status, in a paid and in a trial agency.
SEEDED_MEMBERS = {
    "m-active": "clinic",
    "m-pending": "clinic",
    "m-invited": "clinic",
    "m-removed": "clinic",
    "m-trial-active": "trial-clinic",
    "m-blocked": "trial-clinic",
}


def _fuzz_targets() -> list[Any]:
    """Collected from the document itself, so a new route is fuzzed without editing this file.

    Negative cases need something to make invalid: operations without path,
    query or body inputs get valid requests only.
    """
    config = Config(
        database_url="sqlite://", api_tokens=(API_TOKEN,), secret_key=SECRET_KEY, testing=True
    )
    app = create_app(runtime=build_runtime(config))
    try:
        spec = build_spec(app)
    finally:
        app.extensions["seatsvc"].db.dispose()
    targets = []
    for path, item in sorted(spec["paths"].items()):
        for method, operation in sorted(item.items()):
            label = f"{method.upper()} {path}"
            modes: tuple[GenerationMode, ...] = (GenerationMode.POSITIVE,)
            if operation.get("parameters") or operation.get("requestBody"):
                modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            targets.append(pytest.param(label, modes, id=label))
    return targets


def seed(api: Api) -> None:
    """Two agencies and a member in every status, so each operation has something to act on."""
    api.agency("clinic", seats=3, voice=1, auto_add=True)
    api.ok("PATCH", "/v1/agencies/clinic/settings", {"auto_add_cap": 6})
    api.join("m-active")
    api.seat_request("m-active")
    api.join("m-pending")
    assert api.invite("m-invited").status_code == 201
    api.join("m-removed")
    api.ok("DELETE", "/v1/agencies/clinic/members/m-removed")

    api.ok(
        "PUT",
        "/v1/agencies/trial-clinic",
        {"name": "Trial", "admin_emails": ["admin@trial.example"], "trial": True},
        status=201,
    )
    api.join("m-trial-active", "trial-clinic")
    assert api.seat_request("m-trial-active", "trial-clinic")["outcome"] == "activated"
    api.join("m-blocked", "trial-clinic")
    assert api.seat_request("m-blocked", "trial-clinic")["outcome"] == "blocked"


def path_ids(path: str) -> st.SearchStrategy[dict[str, str]]:
    """Mostly seeded ids (a member with its own agency), sometimes mixed, sometimes generated.

    Pinned ids are what make the stateful code run; the others keep the 404s fuzzed.
    """
    names = set(re.findall(r"{(\w+)}", path))
    agencies = st.sampled_from(AGENCY_IDS)
    members = st.sampled_from(sorted(SEEDED_MEMBERS))
    if "member_id" in names:
        seeded = members.map(
            lambda member: {"agency_id": SEEDED_MEMBERS[member], "member_id": member}
        )
        mixed = st.fixed_dictionaries({}, optional={"agency_id": agencies, "member_id": members})
    elif "agency_id" in names:
        seeded = agencies.map(lambda agency: {"agency_id": agency})
        mixed = st.just({})
    else:
        return st.just({})
    return st.integers(0, 3).flatmap(lambda roll: seeded if roll else mixed)


def invite_tokens(runtime: Runtime) -> list[str]:
    """The one-click tokens of the seeded invites (only their hashes are stored)."""
    with runtime.db.session() as session:
        ids = session.scalars(select(Invite.id)).all()
    return [invite_token(SECRET_KEY, invite_id) for invite_id in ids]


def assert_error_shape(status: int, body: Any, label: str) -> None:
    """API.md: every error is `{"error": {"code", "message", "details"}}`."""
    assert isinstance(body, dict), (label, status, body)
    assert set(body) == {"error"}, (label, status, body)
    error = body["error"]
    assert set(error) == {"code", "message", "details"}, (label, status, body)
    assert isinstance(error["code"], str), (label, status, body)
    assert error["code"], (label, status, body)
    assert isinstance(error["message"], str), (label, status, body)
    assert isinstance(error["details"], dict), (label, status, body)


@pytest.fixture
def fuzz_app(app: Flask, api: Api) -> Flask:
    seed(api)
    return app


def load_schema(app: Flask) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "headers": {"Authorization": f"Bearer {API_TOKEN}"},
            # NUL bytes in generated strings (PostgreSQL text cannot hold them), and any
            # code point UTF-8 can carry; lone surrogates come from `with_hostile_text`.
            "generation": {"allow-x00": True, "codec": "utf-8"},
        }
    )
    return schemathesis.openapi.from_wsgi("/openapi.json", app, config=config)


@pytest.mark.parametrize(("label", "modes"), _fuzz_targets())
def test_fuzzing_finds_no_server_error(
    label: str, modes: tuple[GenerationMode, ...], fuzz_app: Flask, runtime: Runtime
) -> None:
    """Valid requests first (they change the seeded state), then invalid ones."""
    schema = load_schema(fuzz_app)
    method, path = label.split(" ", 1)
    # PostgreSQL gets fewer examples: its own failure modes (types, NUL, lengths) show early.
    scale = FUZZ_SCALE * (1.0 if runtime.db.engine.dialect.name == "sqlite" else 0.5)
    for mode in modes:
        fuzz_operation(schema[path][method], mode, invite_tokens(runtime), scale)


@pytest.mark.slow
@pytest.mark.parametrize(("label", "modes"), _fuzz_targets())
def test_every_phase_finds_no_server_error(
    label: str, modes: tuple[GenerationMode, ...], fuzz_app: Flask, runtime: Runtime
) -> None:
    """The operation's examples and coverage cases, then >= 300 fuzzed cases (PostgreSQL)."""
    if runtime.db.engine.dialect.name != "postgresql":
        pytest.skip("the long run is PostgreSQL's (NUL, surrogates); SQLite has the short one")
    schema = load_schema(fuzz_app)
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    explicit_phases(schema, operation)
    per_mode = -(-DEEP_EXAMPLES // len(modes))  # ceiling: >= 300 in all
    for mode in modes:
        fuzz_operation(
            operation, mode, invite_tokens(runtime), FUZZ_SCALE * per_mode / MAX_EXAMPLES[mode]
        )


def explicit_phases(schema: Any, operation: schemathesis.APIOperation[Any, Any, Any, Any]) -> None:
    """schemathesis's examples and coverage phases for one operation: each case must pass."""
    label = f"{operation.method.upper()} {operation.path}"
    ran: list[str] = []

    def check(case: schemathesis.Case[Any]) -> None:
        ran.append(case.method)
        check_response(case, case.call(), label, checks=[not_a_server_error, *CONFORMANCE])

    modes = [HypothesisTestMode.EXAMPLES, HypothesisTestMode.COVERAGE]
    test = create_test(
        operation=operation,
        test_func=check,
        config=HypothesisTestConfig(
            project=schema.config,
            modes=modes,
            settings=settings(
                deadline=None, database=None, suppress_health_check=list(HealthCheck)
            ),
        ),
    )
    test()
    assert ran, f"no example or coverage case for {label}"


def check_response(case: Any, response: Any, label: str, checks: list[Any]) -> None:
    assert response.status_code < 500, (label, case.as_curl_command(), response.text)
    if response.status_code >= 400:
        assert response.headers.get("content-type", [""])[0].startswith("application/json")
        assert_error_shape(response.status_code, response.json(), label)
    case.validate_response(response, checks=checks)


# Appended to, or put in the middle of, one string of a case: PostgreSQL cannot store NUL,
# UTF-8 cannot encode a lone surrogate; either used to surface as a 500 deep in a flush.
HOSTILE = ("\x00", "\ud800", "\udfff", "\udbff")


@st.composite
def with_hostile_text(draw: st.DrawFn, cases: st.SearchStrategy[Any]) -> Any:
    case = draw(cases)
    if draw(st.integers(0, 2)):
        return case
    slots = _string_slots(case.body, surrogates=True) + _string_slots(case.query, surrogates=False)
    if slots:
        container, key, surrogates_ok = draw(st.sampled_from(slots))
        value: str = container[key]
        poison = draw(st.sampled_from(HOSTILE if surrogates_ok else HOSTILE[:1]))
        at = draw(st.integers(0, len(value)))
        container[key] = value[:at] + poison + value[at:]
    return case


def _string_slots(value: Any, surrogates: bool) -> list[tuple[Any, Any, bool]]:
    """(container, key) of every string in a JSON body or query (a query cannot carry a
    surrogate: it is percent-encoded UTF-8)."""
    found: list[tuple[Any, Any, bool]] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if not isinstance(item, dict | list):
            continue
        for key, child in item.items() if isinstance(item, dict) else enumerate(item):
            if isinstance(child, str):
                found.append((item, key, surrogates))
            elif isinstance(child, dict | list):
                pending.append(child)
    return found


# Authenticated by a Stripe-Signature over the raw body, not by the bearer token.
SIGNED_PATHS = frozenset({"/webhooks/stripe"})


def fuzz_operation(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    tokens: list[str],
    scale: float,
) -> None:
    label, path = f"{operation.method.upper()} {operation.path}", operation.path

    cases = path_ids(path).flatmap(
        lambda pinned: with_hostile_text(operation.as_strategy(mode, path_parameters=pinned))
    )
    if path == "/v1/invites/accept" and mode == GenerationMode.POSITIVE and tokens:
        real = st.sampled_from(tokens).flatmap(
            lambda token: operation.as_strategy(mode, body={"token": token})
        )
        cases = st.one_of(cases, real)

    seen: set[int] = set()

    @settings(
        max_examples=max(5, int(MAX_EXAMPLES[mode] * scale)),
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases)
    def fuzz(case: schemathesis.Case[Any]) -> None:
        response = case.call()
        seen.add(response.status_code)
        check_response(case, response, label, CHECKS[mode])

    fuzz()
    if mode == GenerationMode.POSITIVE and path in SIGNED_PATHS:
        # A fuzzer cannot sign a Stripe event: the view's signature check (400) is as far
        # as it gets; tests/test_webhooks covers what lies past it.
        assert seen == {400}, (label, sorted(seen))
    elif mode == GenerationMode.POSITIVE:
        # Valid requests on seeded ids get past the lookups: the fuzzing reached the logic.
        reached = {code for code in seen if code < 300} if "{" not in path else seen - {404}
        assert reached, (label, sorted(seen))


# ---- what fuzzing found, pinned as plain regression tests -----------------------------


def test_seat_events_cursor_beyond_64_bits_is_a_validation_error(api: Api) -> None:
    """Found by fuzzing: `before=2**63` overflowed the database driver into a 500."""
    api.agency("clinic", seats=1)
    too_big = api.call("GET", f"/v1/agencies/clinic/seat-events?before={2**63}")
    assert too_big.status_code == 422
    assert set(too_big.get_json()["error"]["details"]) == {"before"}
    largest = api.ok("GET", f"/v1/agencies/clinic/seat-events?before={2**63 - 1}")
    assert [event["type"] for event in largest["events"]] == ["purchased"]


def test_control_characters_in_a_name_are_a_validation_error(api: Api) -> None:
    """Found by fuzzing: PostgreSQL cannot store NUL, so `"name": "a\\x00b"` was a 500."""
    for name in ("a\x00b", "tab\there", "\x7f"):
        response = api.call(
            "PUT", "/v1/agencies/nul", {"name": name, "admin_emails": ["a@nul.example"]}
        )
        assert response.status_code == 422, name
        assert set(response.get_json()["error"]["details"]) == {"name"}
    assert api.call("GET", "/v1/agencies/nul").status_code == 404
    created = api.ok(
        "PUT",
        "/v1/agencies/nul",
        {"name": "Clinique Nörth — 2", "admin_emails": ["a@nul.example"]},
        status=201,
    )
    assert created["name"] == "Clinique Nörth — 2"


def test_a_stripe_id_of_another_agency_is_a_conflict(api: Api) -> None:
    """Found by fuzzing: reusing another agency's Stripe ids hit a unique key and was a 500."""
    linked = {"stripe_customer_id": "cus_A", "stripe_subscription_id": "sub_A"}
    body = {"name": "A", "admin_emails": ["a@a.example"], **linked}
    api.ok("PUT", "/v1/agencies/a", body, status=201)
    for field, value in linked.items():
        other = {"name": "B", "admin_emails": ["b@b.example"], field: value}
        if field == "stripe_subscription_id":
            other["stripe_customer_id"] = "cus_B"
        for _ in range(2):  # refused on create, and again once B exists
            response = api.call("PUT", "/v1/agencies/b", other)
            assert response.status_code == 409, response.get_json()
            error = response.get_json()["error"]
            assert (error["code"], error["details"]) == ("invalid_state", {"field": field})
            api.call("PUT", "/v1/agencies/b", {"name": "B", "admin_emails": ["b@b.example"]})
    assert api.ok("GET", "/v1/agencies/b")["stripe_customer_id"] is None
    assert api.ok("PUT", "/v1/agencies/a", body)["stripe_subscription_id"] == "sub_A"


def test_both_success_statuses_of_the_create_or_repeat_calls_are_documented(
    client: FlaskClient,
) -> None:
    """Found by fuzzing: a repeated member POST (200) and an agency PUT create (201)."""
    paths = client.get("/openapi.json").get_json()["paths"]
    assert {"200", "201"} <= set(paths["/v1/agencies/{agency_id}"]["put"]["responses"])
    assert {"200", "201"} <= set(paths["/v1/agencies/{agency_id}/members"]["post"]["responses"])
