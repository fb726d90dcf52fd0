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
from seatsvc.types import StripeEventStatus
from webhooks import events
from webhooks.handlers import HANDLED_TYPES

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
TOLERANCE_SECONDS = 300  # Stripe's default: older signatures may be replays


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
    if not any(_signed_with(text, header, secret) for secret in secrets):
        raise BadRequest("invalid or expired Stripe-Signature")
    try:
        event = json.loads(text)
    except ValueError as error:
        raise BadRequest("the body is not valid JSON") from error
    if not _looks_like_event(event):
        raise BadRequest("the body is not a Stripe event")
    assert isinstance(event, dict)
    return event


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
        and isinstance(event.get("created"), int)
        and isinstance(data, dict)
        and isinstance(data.get("object"), dict)
    )


def _enqueue(connection: redis.Redis, event_id: str) -> None:
    try:
        enqueue_event(connection, event_id)
    except (redis.ConnectionError, redis.TimeoutError):
        # Stored is what Stripe needs; the requeue job enqueues rows left `received`.
        log.warning("could not enqueue Stripe event %s; the requeue job will", event_id)
