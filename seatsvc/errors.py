"""Domain errors. Each carries the API code and HTTP status of API.md.

They are raised by the ledger and the services (which know nothing of Flask)
and turned into the one JSON error shape by `seatsvc.api.errors`.
"""

from __future__ import annotations

from typing import Any


class SeatsvcError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}


class BadRequest(SeatsvcError):
    status, code = 400, "bad_request"


class Unauthorized(SeatsvcError):
    status, code = 401, "unauthorized"


class NotFound(SeatsvcError):
    status, code = 404, "not_found"


class BaaRequired(SeatsvcError):
    status, code = 409, "baa_required"


class NoCapacity(SeatsvcError):
    status, code = 409, "no_capacity"


class BelowUsed(SeatsvcError):
    status, code = 409, "below_used"


class InvalidState(SeatsvcError):
    status, code = 409, "invalid_state"


class TrialLimit(SeatsvcError):
    status, code = 409, "trial_limit"


class InviteExpired(SeatsvcError):
    status, code = 410, "invite_expired"


class PayloadTooLarge(SeatsvcError):
    status, code = 413, "payload_too_large"


class ValidationFailed(SeatsvcError):
    status, code = 422, "validation_error"


class Unavailable(SeatsvcError):
    status, code = 503, "unavailable"
