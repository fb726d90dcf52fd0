"""One JSON error shape for everything that can go wrong, Flask's own errors included."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, jsonify
from marshmallow import ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.exceptions import HTTPException

from seatsvc.db import DatabaseUnavailable
from seatsvc.errors import SeatsvcError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "bad_request",
    422: "validation_error",
    500: "internal_error",
    503: "unavailable",
}
# What a 401 from the API asks for (RFC 6750); the ops dashboard sets its own Basic one.
BEARER_CHALLENGE = 'Bearer realm="seatsvc"'
# Headers of werkzeug's own error response that do not describe our JSON body.
_BODY_HEADERS = frozenset({"content-type", "content-length"})


def _http_code(error: HTTPException) -> str:
    """API.md's code for the status, else werkzeug's name as a code ("Gone" -> "gone")."""
    status = error.code or 500
    return _HTTP_CODES.get(status) or "_".join(error.name.lower().replace("-", " ").split())


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(SeatsvcError)
    def _domain(error: SeatsvcError) -> Response:
        response = error_response(error.status, error.code, error.message, error.details)
        if error.status == 401:
            response.headers["WWW-Authenticate"] = BEARER_CHALLENGE
        return response

    @app.errorhandler(ValidationError)
    def _validation(error: ValidationError) -> Response:
        messages = error.messages
        details = messages if isinstance(messages, dict) else {"_schema": messages}
        return error_response(422, "validation_error", "the request has invalid fields", details)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(status, _http_code(error), error.description or error.name)
        # Keep what werkzeug's answer says beyond its HTML body: Allow, Retry-After, …
        for name, value in error.get_response().headers.items():
            if name.lower() not in _BODY_HEADERS:
                response.headers[name] = value
        if status == 401 and "WWW-Authenticate" not in response.headers:
            response.headers["WWW-Authenticate"] = BEARER_CHALLENGE
        return response

    @app.errorhandler(DatabaseUnavailable)
    @app.errorhandler(PoolTimeout)
    def _unavailable(error: Exception) -> Response:
        log.warning("database unavailable: %s", type(error).__name__)
        return error_response(503, "unavailable", "the database is unreachable; retry shortly")

    @app.errorhandler(DBAPIError)
    def _dbapi(error: DBAPIError) -> Response:
        if error.connection_invalidated:
            return error_response(503, "unavailable", "the database is unreachable; retry shortly")
        log.exception("database error")
        return error_response(500, "internal_error", "an unexpected error occurred")

    @app.errorhandler(Exception)
    def _unexpected(error: Exception) -> Response:
        log.exception("unhandled error")
        return error_response(500, "internal_error", "an unexpected error occurred")
