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
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "bad_request",
    422: "validation_error",
    503: "unavailable",
}


def error_response(
    status: int, code: str, message: str, details: dict[str, Any] | None = None
) -> Response:
    response = jsonify({"error": {"code": code, "message": message, "details": details or {}}})
    response.status_code = status
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(SeatsvcError)
    def _domain(error: SeatsvcError) -> Response:
        return error_response(error.status, error.code, error.message, error.details)

    @app.errorhandler(ValidationError)
    def _validation(error: ValidationError) -> Response:
        messages = error.messages
        details = messages if isinstance(messages, dict) else {"_schema": messages}
        return error_response(422, "validation_error", "the request has invalid fields", details)

    @app.errorhandler(HTTPException)
    def _http(error: HTTPException) -> Response:
        status = error.code or 500
        response = error_response(
            status, _HTTP_CODES.get(status, "http_error"), error.description or error.name
        )
        if status == 405 and error.get_response().headers.get("Allow"):
            response.headers["Allow"] = error.get_response().headers["Allow"]
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
