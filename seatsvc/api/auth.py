"""Bearer tokens for every /v1 call, compared in constant time."""

from __future__ import annotations

import hmac

from flask import Flask, request

from seatsvc.api.context import config
from seatsvc.errors import Unauthorized


def token_is_valid(presented: str, valid_tokens: tuple[str, ...]) -> bool:
    # Compare against every token, so the time taken does not reveal which matched.
    matched = False
    for token in valid_tokens:
        matched |= hmac.compare_digest(presented.encode(), token.encode())
    return matched


def register_auth(app: Flask) -> None:
    @app.before_request
    def _require_bearer_token() -> None:
        # Runs before routing errors surface, so unknown /v1 paths also answer 401.
        if not request.path.startswith("/v1/"):
            return
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        tokens: tuple[str, ...] = config().api_tokens
        if scheme.lower() != "bearer" or not presented or not token_is_valid(presented, tokens):
            raise Unauthorized("a valid bearer token is required")
