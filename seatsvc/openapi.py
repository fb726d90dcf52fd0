"""The OpenAPI document, generated from the app's routes and their marshmallow schemas."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Blueprint, Flask, current_app

from seatsvc import schemas
from seatsvc.api.routing import SEATSVC_ID, RouteDoc, route

_PARAM = re.compile(r"<(?:(\w+):)?(\w+)>")
_CONVERTER_SCHEMAS = {
    "id": {"type": "string", "pattern": f"^{SEATSVC_ID}$"},
    "seat_type": {"type": "string", "enum": ["base", "voice"]},
    None: {"type": "string"},
}
_ERROR_TEXT = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    409: "conflict (see code)",
    410: "invite_expired",
    413: "payload_too_large",
    422: "validation_error",
    503: "unavailable",
}

bp = Blueprint("openapi", __name__)


def build_spec(app: Flask) -> dict[str, Any]:
    spec = APISpec(
        title="seatsvc",
        version="1",
        openapi_version="3.0.3",
        plugins=[MarshmallowPlugin()],
        info={"description": "Per-seat billing: the seat ledger's internal API."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.schema("Error", schema=schemas.ErrorSchema)
    for rule in app.url_map.iter_rules():
        doc = getattr(app.view_functions.get(rule.endpoint), "__openapi__", None)
        if not isinstance(doc, RouteDoc):
            continue
        method = next(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS")).lower()
        spec.path(path=openapi_path(rule.rule), operations={method: _operation(rule.rule, doc)})
    return spec.to_dict()


def openapi_path(rule: str) -> str:
    return _PARAM.sub(lambda match: "{" + match.group(2) + "}", rule)


def _operation(rule: str, doc: RouteDoc) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "summary": doc.summary,
        "tags": list(doc.tags),
        "parameters": [
            {
                "in": "path",
                "name": name,
                "required": True,
                "schema": _CONVERTER_SCHEMAS.get(converter or None, {"type": "string"}),
            }
            for converter, name in _PARAM.findall(rule)
        ],
        "responses": {
            str(doc.status): _response(doc.response, "OK"),
            **{str(code): _response(doc.response, HTTPStatus(code).phrase) for code in doc.also},
            **{
                str(code): _response(None, _ERROR_TEXT.get(code, "error"), error=True)
                for code in doc.errors
            },
        },
    }
    if doc.query is not None:
        operation["parameters"].append({"in": "query", "schema": doc.query})
    if doc.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": doc.body}},
        }
    if doc.auth:
        operation["security"] = [{"bearer": []}]
        operation["responses"].setdefault("401", _response(None, "unauthorized", error=True))
    if operation["parameters"] and operation["parameters"][0]["in"] == "path":
        # An id outside the converter's pattern never routes: the router answers 404.
        operation["responses"].setdefault("404", _response(None, "not_found", error=True))
    return operation


def _response(schema: Any, description: str, error: bool = False) -> dict[str, Any]:
    body = "Error" if error else schema
    if body is None:
        return {"description": description}
    return {"description": description, "content": {"application/json": {"schema": body}}}


@route(bp, "/openapi.json", "GET", "This OpenAPI document", auth=False)
def openapi_document() -> dict[str, Any]:
    cached = current_app.extensions.get("seatsvc_openapi")
    if cached is None:
        cached = current_app.extensions["seatsvc_openapi"] = build_spec(current_app)
    return cached
