"""Stripe's error shape (`{"error": {"type", "code", "message", "param", ...}}`) and HTTP codes.

Messages follow the ones real Stripe returns (https://docs.stripe.com/error-codes).
"""

from __future__ import annotations

from typing import Any

DOC_BASE = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """Raised anywhere in a handler; the server turns it into Stripe's JSON error."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        saved_by_idempotency: bool = True,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_
        self.code = code
        self.param = param
        self.extra = extra or {}
        self.headers = headers or {}
        # Stripe saves an idempotent result only once the endpoint began executing:
        # validation errors and lock/rate-limit 429s are not replayed
        # (https://docs.stripe.com/api/idempotent_requests).
        self.saved_by_idempotency = saved_by_idempotency

    def body(self, request_id: str | None = None) -> dict[str, Any]:
        err: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            err["code"] = self.code
            err["doc_url"] = DOC_BASE + self.code.replace("_", "-")
        if self.param is not None:
            err["param"] = self.param
        if request_id:
            err["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        err.update(self.extra)
        return {"error": err}


def unknown_parameter(param: str) -> StripeError:
    return StripeError(
        400,
        f"Received unknown parameter: {param}",
        code="parameter_unknown",
        param=param,
        saved_by_idempotency=False,
    )


def missing_parameter(param: str) -> StripeError:
    return StripeError(
        400,
        f"Missing required param: {param}.",
        code="parameter_missing",
        param=param,
        saved_by_idempotency=False,
    )


def invalid_choice(param: str, choices: list[str]) -> StripeError:
    # Stripe words this "Invalid <param>: must be one of a, b, or c".
    shown = ", ".join(choices[:-1]) + (", or " if len(choices) > 1 else "") + choices[-1]
    return StripeError(
        400,
        f"Invalid {param}: must be one of {shown}",
        code="parameter_invalid_string",
        param=param,
        saved_by_idempotency=False,
    )


def invalid_integer(param: str) -> StripeError:
    return StripeError(
        400,
        f"Invalid integer: {param}",
        code="parameter_invalid_integer",
        param=param,
        saved_by_idempotency=False,
    )


def invalid_value(param: str, message: str) -> StripeError:
    return StripeError(400, message, param=param, saved_by_idempotency=False)


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> StripeError:
    return StripeError(400, message, param=param, code=code)


def resource_missing(kind: str, obj_id: str, param: str = "id") -> StripeError:
    return StripeError(404, f"No such {kind}: '{obj_id}'", code="resource_missing", param=param)


def not_found_url(method: str, path: str) -> StripeError:
    return StripeError(
        404,
        f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
        "or we can help at https://support.stripe.com/.",
        saved_by_idempotency=False,
    )


def card_declined(
    decline_code: str = "generic_decline",
    *,
    invoice_id: str | None = None,
    payment_method: str | None = None,
    message: str = "Your card was declined.",
) -> StripeError:
    extra: dict[str, Any] = {"decline_code": decline_code}
    if payment_method:
        extra["payment_method"] = {"id": payment_method, "object": "payment_method"}
    if invoice_id:
        extra["invoice"] = invoice_id
    return StripeError(402, message, type_="card_error", code="card_declined", extra=extra)


def lock_timeout() -> StripeError:
    # https://docs.stripe.com/error-codes#lock-timeout ; Stripe advises a retry through
    # the Stripe-Should-Retry header, which the official SDKs honour.
    return StripeError(
        429,
        "This object cannot be accessed right now because another API request or Stripe "
        "process is currently accessing it. If you see this error intermittently, retry the "
        "request. If you see this error frequently and are making multiple concurrent "
        "requests to a single object, make your requests serially or at a lower rate. See "
        "https://stripe.com/docs/rate-limits for more information.",
        code="lock_timeout",
        headers={"Stripe-Should-Retry": "true"},
        saved_by_idempotency=False,
    )


def rate_limited(message: str) -> StripeError:
    return StripeError(429, message, code="rate_limit", saved_by_idempotency=False)


def idempotency_mismatch(key: str) -> StripeError:
    # Stripe's wording, as its SDK users report it (e.g. stripe-ruby users' logs):
    # "Keys for idempotent requests can only be used with the same parameters they were
    # first used with. Try using a key other than '<key>' if you meant to execute a
    # different request."
    return StripeError(
        400,
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.",
        type_="idempotency_error",
        saved_by_idempotency=False,
    )


def idempotency_endpoint_mismatch(key: str, path: str, first_path: str) -> StripeError:
    # The same key on another endpoint (quoted in stripe/stripe-ruby#598): "... can only be
    # used for the same endpoint they were first used for ('<new>' vs '<first>') ..."
    return StripeError(
        400,
        "Keys for idempotent requests can only be used for the same endpoint they were first "
        f"used for ('{path}' vs '{first_path}'). Try using a key other than '{key}' if you "
        "meant to execute a different request.",
        type_="idempotency_error",
        saved_by_idempotency=False,
    )


def idempotency_in_use(key: str) -> StripeError:
    return StripeError(
        409,
        "There is currently another in-progress request using this Stripe-Idempotency-Key "
        f"'{key}'. Please try again later.",
        type_="idempotency_error",
        code="idempotency_key_in_use",
        headers={"Stripe-Should-Retry": "true"},
        saved_by_idempotency=False,
    )


def auth_missing() -> StripeError:
    return StripeError(
        401,
        "You did not provide an API key. You need to provide your API key in the "
        "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer YOUR_SECRET_KEY'"
        "). See https://stripe.com/docs/api#authentication for details, or we can help at "
        "https://support.stripe.com/.",
        saved_by_idempotency=False,
    )


def auth_invalid(key: str) -> StripeError:
    shown = key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else key
    return StripeError(
        401,
        f"Invalid API Key provided: {shown}",
        saved_by_idempotency=False,
    )


def api_error(message: str = "An unknown error occurred") -> StripeError:
    return StripeError(500, message, type_="api_error", saved_by_idempotency=False)


def injected(status: int) -> StripeError:
    """An injected failure once the endpoint ran: Stripe's 5xx body is a bare `api_error`;
    it is saved under the idempotency key like any result (see faults.py)."""
    if status >= 500:
        return StripeError(status, "An unknown error occurred", type_="api_error")
    return StripeError(status, "Injected failure (stripe emulator).", type_="api_error")


def duplicate_price(price_id: str, creating: bool) -> StripeError:
    """A subscription cannot hold two items with the same price (DESIGN.md). Adding one:
    Stripe answered "Cannot add multiple subscription items with the same plan: <id>"
    (param `plan`) in the Plans era (stripe-archive/submigrate#1); with Prices the same
    sentence says "price". Creating one: a recorded live answer reads "Cannot create a
    Subscription with multiple Subscription Items with the same Price: <id>" (param `plan`)."""
    if creating:
        message = (
            "Cannot create a Subscription with multiple Subscription Items with the same "
            f"Price: {price_id}"
        )
    else:
        message = f"Cannot add multiple subscription items with the same price: {price_id}"
    return StripeError(400, message, param="plan")
