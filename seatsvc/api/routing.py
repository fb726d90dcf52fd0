"""The `route` decorator: load the body/query with a schema, dump the answer.

It also records each route's schemas on the view, which is what
`seatsvc.openapi` reads: the document is built from the very schemas that
validate requests, so the two cannot drift.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request
from marshmallow import Schema
from werkzeug.exceptions import BadRequest as WerkzeugBadRequest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from seatsvc.errors import BadRequest

SEATSVC_ID = "[A-Za-z0-9_.:-]{1,64}"


class IdConverter(BaseConverter):
    """An agency or member id: 1-64 chars of [A-Za-z0-9_.:-]; anything else is a 404."""

    regex = SEATSVC_ID


class SeatTypeConverter(BaseConverter):
    regex = "base|voice"


@dataclass
class RouteDoc:
    summary: str
    body: type[Schema] | None = None
    query: type[Schema] | None = None
    response: type[Schema] | None = None
    status: int = 200
    errors: tuple[int, ...] = ()
    auth: bool = True
    tags: tuple[str, ...] = field(default_factory=tuple)
    # Other success statuses the view answers (a repeated create is 200, not 201).
    also: tuple[int, ...] = ()


def route(
    blueprint: Blueprint,
    rule: str,
    method: str,
    summary: str,
    *,
    body: type[Schema] | None = None,
    query: type[Schema] | None = None,
    response: type[Schema] | None = None,
    status: int = 200,
    errors: tuple[int, ...] = (),
    auth: bool = True,
    also: tuple[int, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Response]]:
    doc = RouteDoc(
        summary, body, query, response, status, errors, auth, (blueprint.name,), also=also
    )

    def decorate(view: Callable[..., Any]) -> Callable[..., Response]:
        @functools.wraps(view)
        def wrapper(**path: Any) -> Response:
            kwargs = dict(path)
            if body is not None:
                kwargs["data"] = body().load(_json_body())
            if query is not None:
                kwargs["params"] = query().load(request.args.to_dict())
            result = view(**kwargs)
            if isinstance(result, Response):  # a view that renders its own body (/metrics)
                return result
            code = status
            if isinstance(result, tuple):
                result, code = result
            payload = response().dump(result) if response is not None else result
            answer = jsonify(payload)
            answer.status_code = code
            return answer

        wrapper.__openapi__ = doc  # type: ignore[attr-defined]
        blueprint.add_url_rule(rule, view.__name__, wrapper, methods=[method])
        return wrapper

    return decorate


def _json_body() -> Any:
    """The JSON body; an empty body counts as `{}` so optional-body calls need none."""
    if not request.get_data(cache=True):
        return {}
    if not request.is_json:
        raise BadRequest("the body must be JSON (Content-Type: application/json)")
    try:
        return request.get_json()
    except WerkzeugBadRequest as error:
        raise BadRequest("the body is not valid JSON") from error
    except RecursionError as error:  # `[[[[…` thousands deep: the parser gives up
        raise BadRequest("the body is nested too deeply") from error


def register_body_limit(app: Flask) -> None:
    """413 for any body over MAX_CONTENT_LENGTH, before any view runs.

    Flask checks the limit only when a view reads the body, so a view that never
    does (a seat request, a DELETE) would act on a 10 MB request. Reading it here
    (bounded) makes every endpoint refuse it before anything changes.
    """

    @app.before_request
    def _enforce_body_limit() -> None:
        # A Content-Length over the limit: werkzeug raises 413 before reading anything.
        body = request.get_data(cache=True)
        limit = request.max_content_length
        if limit is None or request.content_length is not None or len(body) < limit:
            return
        # A chunked body (no Content-Length) is read only up to the limit, silently: one
        # more byte from the server's own stream tells a body at the limit from one over it.
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
