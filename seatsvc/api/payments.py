"""Payment details and plan (API.md): payment-setup, billing-portal, upgrade.

Unlike the other views, these must answer with a Stripe URL, so they make one
Stripe call in the request, between two short transactions (never inside one).
Each call's idempotency key is derived from the whole request body (and the card
on file), so a retried request gets the same Stripe session back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Blueprint, Response, jsonify

from seatsvc.api.context import runtime, transaction
from seatsvc.api.payment_schemas import (
    PaymentSetupSchema,
    PortalSchema,
    ReturnUrlSchema,
    UpgradeCheckoutSchema,
    UpgradeSchema,
)
from seatsvc.api.routing import route
from seatsvc.billing.gateway import (
    PaymentDeclined,
    StripeGateway,
    StripePermanent,
    StripeTransient,
    stripe_client,
)
from seatsvc.billing.payments import PaymentsGateway
from seatsvc.billing.upgrade_rules import UpgradeStep, request_key
from seatsvc.enqueue import enqueue_upgrade
from seatsvc.errors import Unavailable
from seatsvc.models import utcnow
from seatsvc.schemas import AgencySchema
from seatsvc.services import upgrades
from seatsvc.services.agencies import AgencyView

bp = Blueprint("payments", __name__, url_prefix="/v1/agencies")
AGENCY = "/<id:agency_id>"
T = TypeVar("T")
log = logging.getLogger(__name__)


def _payments() -> PaymentsGateway:
    """Checkout and portal calls need no prices: a bare gateway on the configured client."""
    return PaymentsGateway(StripeGateway(stripe_client(runtime().config), {}))


def _stripe(call: Callable[[], T]) -> T:
    """A Stripe failure is the caller's `503 unavailable`: nothing was stored, retry."""
    try:
        return call()
    except (StripeTransient, StripePermanent, PaymentDeclined) as error:
        log.warning("stripe refused or failed a payment-details call: %s", error)
        raise Unavailable("the payment provider could not be reached: try again shortly") from error


@route(
    bp,
    AGENCY + "/payment-setup",
    "POST",
    "Collect payment details: a Stripe Checkout Session in setup mode",
    body=ReturnUrlSchema,
    response=PaymentSetupSchema,
    status=201,
    errors=(400, 401, 404, 409, 413, 422, 503),
)
def payment_setup(agency_id: str, data: dict[str, Any]) -> dict[str, Any]:
    customer_id, card_id = transaction(lambda s: upgrades.require_customer(s, agency_id))
    # The day too: a session lives 24 h, so a repeat tomorrow gets a fresh one, not a replay.
    day = utcnow().date().isoformat()
    key = f"seatsvc:{agency_id}:payment-setup:{request_key(data)}:{card_id or 'no-card'}:{day}"
    link = _stripe(
        lambda: _payments().create_setup_checkout(
            customer_id,
            success_url=data["return_url"],
            cancel_url=data["return_url"],
            metadata={"agency_id": agency_id, "purpose": "payment_setup"},
            key=key,
        )
    )
    return {"url": link.url, "expires_at": link.expires_at}


@route(
    bp,
    AGENCY + "/billing-portal",
    "POST",
    "A Stripe customer-portal session (update the card, see invoices)",
    body=ReturnUrlSchema,
    response=PortalSchema,
    status=201,
    errors=(400, 401, 404, 409, 413, 422, 503),
)
def billing_portal(agency_id: str, data: dict[str, Any]) -> dict[str, Any]:
    customer_id, _card = transaction(lambda s: upgrades.require_customer(s, agency_id))
    key = f"seatsvc:{agency_id}:billing-portal:{request_key(data)}"
    url = _stripe(lambda: _payments().create_portal(customer_id, data["return_url"], key))
    return {"url": url}


@route(
    bp,
    AGENCY + "/upgrade",
    "POST",
    "Become a paying agency with these seats (200: charged now; 202: Checkout first)",
    body=UpgradeSchema,
    response=AgencySchema,
    errors=(400, 401, 404, 409, 413, 422, 503),
    also=(202,),
)
def upgrade(agency_id: str, data: dict[str, Any]) -> AgencyView | Response:
    seats = {"base": data["seats"]["base"], "voice": data["seats"]["voice"]}
    key = request_key(data)
    start = transaction(lambda s: upgrades.begin_upgrade(s, agency_id, seats, key, utcnow()))
    if start.step in (UpgradeStep.CHARGE_NOW, UpgradeStep.ALREADY):
        if start.upgrade_id is not None:
            _nudge(agency_id)
        assert start.view is not None
        return start.view
    if start.step == UpgradeStep.SAME_CHECKOUT:
        return _checkout_answer(str(start.checkout_url), start.checkout_expires_at)
    assert start.customer_id is not None
    customer_id = start.customer_id
    link = _stripe(
        lambda: _payments().create_setup_checkout(
            customer_id,
            success_url=data["return_url"],
            cancel_url=data["return_url"],
            metadata={"agency_id": agency_id, "purpose": "upgrade"},
            key=f"seatsvc:{agency_id}:upgrade-checkout:{key}:{start.attempt}",
        )
    )
    row = transaction(
        lambda s: upgrades.record_checkout(
            s, agency_id, seats, key, link.id, link.url, link.expires_at
        )
    )
    return _checkout_answer(str(row.checkout_url), row.checkout_expires_at)


def _checkout_answer(url: str, expires_at: Any) -> Response:
    answer = jsonify(UpgradeCheckoutSchema().dump({"checkout_url": url, "expires_at": expires_at}))
    answer.status_code = 202
    return answer


def _nudge(agency_id: str) -> None:
    """After commit: the worker charges. Redis down: the requeue cron finds the row."""
    try:
        enqueue_upgrade(runtime().redis, agency_id)
    except Exception:
        log.warning("could not enqueue the upgrade of %s; the requeue job will", agency_id)
