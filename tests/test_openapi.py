"""`GET /openapi.json` is a valid OpenAPI 3 document that tells the truth about the app.

Callers generate clients from it and the fuzz tests drive the API from it, so
it must list every route the app serves, describe request bodies with the very
marshmallow schemas that validate them, and promise the one error shape.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin, resolver
from flask import Flask
from flask.testing import FlaskClient
from marshmallow import Schema

from seatsvc import schemas
from seatsvc.api import payment_schemas
from seatsvc.api.routing import SEATSVC_ID, RouteDoc
from seatsvc.app import create_app
from seatsvc.config import Config
from seatsvc.openapi import openapi_path
from tests.backends import build_runtime
from tests.conftest import API_TOKEN, SECRET_KEY

HTTP_METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
# Mounted third-party apps document themselves (or nothing); they are not our API.
UNDOCUMENTED_PREFIXES = ("/ops/rq", "/docs")  # the dashboard; the reference's own page
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Flask]:
    """Every optional part switched on (ops dashboard, webhooks), so every route is mounted."""
    database = tmp_path_factory.mktemp("openapi") / "openapi.sqlite3"
    config = Config(
        database_url=f"sqlite:///{database}",
        api_tokens=(API_TOKEN,),
        secret_key=SECRET_KEY,
        stripe_webhook_secrets=("whsec_openapi_test",),
        ops_password="ops-password-for-tests",
        testing=True,
    )
    runtime = build_runtime(config)
    yield create_app(runtime=runtime)
    runtime.db.dispose()


@pytest.fixture(scope="module")
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture(scope="module")
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body: dict[str, Any] = response.get_json()
    return body


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in HTTP_METHODS:
                yield path, method, operation


def documented_rules(app: Flask) -> Iterator[tuple[str, str, RouteDoc]]:
    """(openapi path, method, RouteDoc) of every route declared with `route`."""
    for rule in app.url_map.iter_rules():
        doc = getattr(app.view_functions.get(rule.endpoint), "__openapi__", None)
        if isinstance(doc, RouteDoc):
            for method in (rule.methods or set()) - {"HEAD", "OPTIONS"}:
                yield openapi_path(rule.rule), method.lower(), doc


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def converted(schema: type[Schema]) -> dict[str, Any]:
    """What apispec makes of a schemas.py class on its own, to compare with the served one."""
    spec = APISpec("probe", "1", "3.0.3", plugins=[MarshmallowPlugin()])
    spec.components.schema(resolver(schema), schema=schema)
    component: dict[str, Any] = spec.to_dict()["components"]["schemas"][resolver(schema)]
    return component


# ---- a valid OpenAPI 3 document ---------------------------------------------------


def test_document_validates_against_the_openapi_3_0_meta_schema(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.0.")
    try:
        from openapi_spec_validator import validate  # type: ignore[import-not-found]
    except ImportError:
        validate = None
    if validate is not None:
        validate(document)
        return
    # schemathesis ships the official OpenAPI 3.0 meta-schema with a compiled validator.
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    errors = [str(error) for error in definitions.OPENAPI_30_VALIDATOR.iter_errors(document)]
    assert errors == []


def test_meta_schema_validation_can_fail(document: dict[str, Any]) -> None:
    """The control: a broken document is caught, so the test above is not vacuous."""
    definitions = pytest.importorskip("schemathesis.specs.openapi.definitions")
    broken = {**document, "paths": {"/x": {"get": {"responses": {"200": {}}}}}}
    assert not definitions.OPENAPI_30_VALIDATOR.is_valid(broken)


def test_document_structure(document: dict[str, Any]) -> None:
    """The checks that hold with or without a meta-schema validator."""
    assert document["info"]["title"] == "seatsvc"
    assert document["info"]["version"]
    assert document["paths"]
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        assert path.startswith("/"), where
        assert operation.get("summary"), where
        assert operation["responses"], where
        for status, response in operation["responses"].items():
            assert re.fullmatch(r"[1-5]\d\d|default", status), (where, status)
            assert response.get("description"), (where, status)
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", path)), where
        for parameter in operation.get("parameters", []):
            assert parameter["in"] in {"path", "query", "header", "cookie"}, where
            assert "schema" in parameter, (where, parameter)
            if parameter["in"] == "path":
                assert parameter["required"] is True, (where, parameter)


def test_every_reference_resolves(document: dict[str, Any]) -> None:
    found = list(refs(document))
    assert ERROR_REF in found
    for ref in found:
        assert isinstance(resolve(document, ref), dict), ref


def test_bearer_security_is_declared_and_used(document: dict[str, Any]) -> None:
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {"type": "http", "scheme": "bearer"}
    for path, method, operation in operations(document):
        secured = operation.get("security") == [{"bearer": []}]
        assert secured == path.startswith("/v1/"), f"{method.upper()} {path}"


# ---- every route is documented ---------------------------------------------------------


def test_every_route_appears_with_its_method(app: Flask, document: dict[str, Any]) -> None:
    served: set[tuple[str, str]] = set()
    for rule in app.url_map.iter_rules():
        methods = (rule.methods or set()) - {"HEAD", "OPTIONS"}
        if not methods or rule.endpoint == "static":
            continue
        if rule.rule.startswith(UNDOCUMENTED_PREFIXES):
            continue
        served.update((openapi_path(rule.rule), method.lower()) for method in methods)
    documented = {(path, method) for path, method, _ in operations(document)}
    assert served - documented == set(), "routes missing from /openapi.json"
    assert documented - served == set(), "documented operations the app does not serve"
    # The API.md surface is all there (a route dropped from the app fails here, too).
    for path, method in [
        ("/v1/agencies/{agency_id}", "put"),
        ("/v1/agencies/{agency_id}/members/{member_id}/seat-request", "post"),
        ("/v1/invites/accept", "post"),
        ("/openapi.json", "get"),
    ]:
        assert (path, method) in documented


def test_path_parameters_match_the_url_converters(document: dict[str, Any]) -> None:
    """The id pattern documented is the one the router enforces (anything else is a 404)."""
    for path, method, operation in operations(document):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            where = (method, path, parameter["name"])
            if parameter["name"] == "seat_type":
                assert parameter["schema"] == {"type": "string", "enum": ["base", "voice"]}, where
            else:
                assert parameter["name"].endswith("_id"), where
                assert parameter["schema"]["pattern"] == f"^{SEATSVC_ID}$", where


# ---- request bodies and queries are the schemas.py classes --------------------------------


def test_request_bodies_reference_the_validating_schemas(
    app: Flask, document: dict[str, Any]
) -> None:
    with_body = 0
    for path, method, doc in documented_rules(app):
        operation = document["paths"][path][method]
        if doc.body is None:
            assert "requestBody" not in operation, (method, path)
            continue
        with_body += 1
        home = payment_schemas if doc.body.__module__ == payment_schemas.__name__ else schemas
        assert getattr(home, doc.body.__name__) is doc.body
        body = operation["requestBody"]
        assert body["required"] is True
        assert list(body["content"]) == ["application/json"]
        ref = body["content"]["application/json"]["schema"]["$ref"]
        assert ref == f"#/components/schemas/{resolver(doc.body)}"
        component = resolve(document, ref)
        assert component == converted(doc.body), (method, path)
        # And directly against marshmallow: the fields and required ones, no extras.
        fields = doc.body().load_fields
        assert set(component["properties"]) == {f.data_key or n for n, f in fields.items()}
        assert set(component.get("required", [])) == {
            f.data_key or n for n, f in fields.items() if f.required
        }
        assert component["additionalProperties"] is False  # unknown fields are refused
    assert with_body >= 7


def test_query_parameters_are_the_query_schemas(app: Flask, document: dict[str, Any]) -> None:
    with_query = 0
    for path, method, doc in documented_rules(app):
        operation = document["paths"][path][method]
        query = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
        if doc.query is None:
            assert query == set(), (method, path)
            continue
        with_query += 1
        assert getattr(schemas, doc.query.__name__) is doc.query
        assert query == set(doc.query().load_fields)
    assert with_query == 2  # seat-events and the member list


def test_success_responses_use_the_response_schemas(app: Flask, document: dict[str, Any]) -> None:
    """Each success status a view answers (a create-or-repeat has two) has the response schema."""
    for path, method, doc in documented_rules(app):
        responses = document["paths"][path][method]["responses"]
        successes = {code for code in responses if code.startswith("2")}
        assert successes == {str(code) for code in (doc.status, *doc.also)}, (method, path)
        if doc.response is None:
            continue
        for code in successes:
            ref = responses[code]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{resolver(doc.response)}", (method, path)


# ---- every error is the one Error shape -------------------------------------------------


def test_error_schema_is_the_api_md_shape(document: dict[str, Any]) -> None:
    error = document["components"]["schemas"]["Error"]
    assert error == converted(schemas.ErrorSchema)
    assert error["required"] == ["error"]
    body = resolve(document, error["properties"]["error"]["$ref"])
    assert set(body["properties"]) == {"code", "message", "details"}
    # API.md: every error carries all three, details at least `{}`.
    assert set(body["required"]) == {"code", "message", "details"}
    assert body["properties"]["details"]["type"] == "object"


def test_every_documented_error_uses_the_error_schema(document: dict[str, Any]) -> None:
    errors = 0
    for path, method, operation in operations(document):
        for status, response in operation["responses"].items():
            if int(status) < 400:
                continue
            errors += 1
            assert response["content"] == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (
                method,
                path,
                status,
            )
    assert errors >= 30


def test_the_errors_each_operation_can_raise_are_documented(document: dict[str, Any]) -> None:
    """Bodies can be malformed or invalid; a resource in the path can be missing; /v1 needs auth."""
    for path, method, operation in operations(document):
        codes = set(operation["responses"])
        where = f"{method.upper()} {path}"
        if "requestBody" in operation:
            assert {"400", "422"} <= codes, where
        if any(p["in"] == "query" for p in operation.get("parameters", [])):
            assert "422" in codes, where
        if path.startswith("/v1/"):
            assert "401" in codes, where
        if "{" in path:  # an unknown id, or one the router's pattern refuses
            assert "404" in codes, where


def test_documented_auth_matches_the_app(client: FlaskClient, document: dict[str, Any]) -> None:
    """Without a token, each secured operation answers 401 in the Error shape; the others don't."""
    for path, method, operation in operations(document):
        url = path.replace("{seat_type}", "base")
        url = re.sub(r"{\w+}", "x1", url)
        response = client.open(url, method=method.upper())
        body: dict[str, Any] = response.get_json(silent=True) or {}
        if operation.get("security"):
            assert response.status_code == 401, (method, path)
            assert body["error"]["code"] == "unauthorized"
            assert set(body["error"]) == {"code", "message", "details"}
        else:
            assert response.status_code != 401, (method, path)


# ---- payment details and plan (issue #11) ---------------------------------------------------


def test_payment_routes_are_documented_with_their_schemas(document: dict[str, Any]) -> None:
    prefix = "/v1/agencies/{agency_id}"
    for path, created in (
        ("/payment-setup", "201"),
        ("/billing-portal", "201"),
        ("/upgrade", "200"),
    ):
        operation = document["paths"][prefix + path]["post"]
        assert created in operation["responses"], path
        body = resolve(
            document, operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        )
        assert "return_url" in body["required"], path
        for status in ("409", "422"):
            assert status in operation["responses"], (path, status)
    upgrade = document["paths"][prefix + "/upgrade"]["post"]
    assert "202" in upgrade["responses"]
    body = resolve(
        document, upgrade["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    )
    assert set(body["required"]) == {"seats", "return_url"}
    agency = document["components"]["schemas"]["Agency"]["properties"]
    assert "payment_method" in agency
