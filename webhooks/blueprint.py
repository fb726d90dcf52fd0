"""`POST /webhooks/stripe`: verify, store, enqueue, answer. Nothing else.

No Stripe call and no ledger work in the request (DESIGN.md invariant 5):
Stripe only needs a 2xx once the event is durably stored, and a slow answer
makes it retry. The signature is checked on the raw bytes, before any
parsing, against every configured secret (STRIPE_WEBHOOK_SECRET is
comma-separated so a secret can be rolled without losing events).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis
import stripe
from flask import Blueprint, request

from seatsvc.api.context import config, runtime
from seatsvc.api.routing import route
from seatsvc.enqueue import enqueue_event
from seatsvc.errors import BadRequest
from seatsvc.metrics import WEBHOOK_EVENTS
from seatsvc.schemas import is_storable_text
from seatsvc.types import StripeEventStatus
from webhooks import events
from webhooks.handlers import HANDLED_TYPES

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
TOLERANCE_SECONDS = 300  # Stripe's default: older signatures may be replays
# The latest `created` a stored event may carry (9999-12-31): later ones overflow datetime.
_LAST_TIMESTAMP = 253_402_300_799
_MAX_DEPTH = 64


@route(
    bp,
    "/stripe",
    "POST",
    "Stripe's webhook events. Authenticated by the Stripe-Signature header (HMAC-SHA256 of "
    "the raw body, 300 s tolerance), not by a bearer token; the body is the event exactly as "
    'Stripe sent it. Answers {"received": true} once the event is stored.',
    auth=False,
    errors=(400, 413),
)
def stripe_webhook() -> dict[str, Any]:
    payload = request.get_data(cache=False)  # over MAX_CONTENT_LENGTH: 413, nothing read
    try:
        event = verify(
            payload, request.headers.get("Stripe-Signature"), config().stripe_webhook_secrets
        )
    except BadRequest:
        WEBHOOK_EVENTS.labels(type="unverified", result="rejected").inc()
        raise
    handled = event["type"] in HANDLED_TYPES
    status = StripeEventStatus.RECEIVED if handled else StripeEventStatus.IGNORED
    rt = runtime()
    stored = rt.transaction(lambda s: events.insert_event(s, event, status))
    if stored and handled:
        _enqueue(rt.redis, event["id"])
    result = ("stored" if handled else "ignored") if stored else "duplicate"
    WEBHOOK_EVENTS.labels(type=event["type"], result=result).inc()
    return {"received": True}


def verify(payload: bytes, header: str | None, secrets: Sequence[str]) -> dict[str, Any]:
    """The event, once its signature is valid under one of `secrets`; else 400.

    The error messages never include the header, the body or a secret.
    """
    if not secrets:
        raise BadRequest("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET)")
    if not header:
        raise BadRequest("missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as error:
        raise BadRequest("the body is not UTF-8") from error
    if not _timestamp_is_fresh(header) or not any(
        _signed_with(text, header, secret) for secret in secrets
    ):
        raise BadRequest("invalid or expired Stripe-Signature")
    try:
        event = json.loads(text)
    except ValueError as error:
        raise BadRequest("the body is not valid JSON") from error
    except RecursionError as error:
        raise BadRequest("the body is nested too deeply") from error
    if not _looks_like_event(event):
        raise BadRequest("the body is not a Stripe event")
    if not _storable(event):
        raise BadRequest("the event holds NUL characters, lone surrogates or is nested too deeply")
    assert isinstance(event, dict)
    return event


def _timestamp_is_fresh(header: str) -> bool:
    """`t=` within the tolerance in both directions.

    Stripe's SDK refuses only old timestamps; one far in the future would stay
    replayable until then (a leaked signed request, a wrong clock).
    """
    pairs = [item.partition("=") for item in header.split(",")]
    stamps = [value for key, _, value in pairs if key.strip() == "t"]
    if len(stamps) != 1 or not stamps[0].strip().isdigit():
        return False
    return abs(time.time() - int(stamps[0])) <= TOLERANCE_SECONDS


def _signed_with(text: str, header: str, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(text, header, secret, TOLERANCE_SECONDS)
    except stripe.SignatureVerificationError:
        return False
    return True


def _looks_like_event(event: Any) -> bool:
    if not isinstance(event, dict):
        return False
    data = event.get("data")
    return (
        isinstance(event.get("id"), str)
        and 0 < len(event["id"]) <= 255
        and isinstance(event.get("type"), str)
        and 0 < len(event["type"]) <= 100
        and type(event.get("created")) is int
        and 0 <= event["created"] <= _LAST_TIMESTAMP
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    )


def _storable(event: dict[str, Any]) -> bool:
    """Nothing the JSON column refuses: no NUL, no lone surrogate (keys included).

    Also no nesting deeper than Stripe's own objects ever go: storing the payload
    serialises it again, and a very deep one would overflow the encoder. Iterative,
    so the walk itself cannot.
    """
    pending: list[tuple[Any, int]] = [(event, 0)]
    while pending:
        item, depth = pending.pop()
        if depth > _MAX_DEPTH:
            return False
        if isinstance(item, dict):
            pending.extend((key, depth + 1) for key in item)
            pending.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            pending.extend((value, depth + 1) for value in item)
        elif isinstance(item, str) and not is_storable_text(item):
            return False
    return True


def _enqueue(connection: redis.Redis, event_id: str) -> None:
    try:
        enqueue_event(connection, event_id)
    except (redis.ConnectionError, redis.TimeoutError):
        # Stored is what Stripe needs; the requeue job enqueues rows left `received`.
        log.warning("could not enqueue Stripe event %s; the requeue job will", event_id)
