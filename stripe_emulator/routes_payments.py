"""Routes for payment details: Checkout (setup mode), SetupIntents, the customer portal,
and resuming a subscription paused at the end of its trial."""

from __future__ import annotations

from typing import Any

from stripe_emulator import checkout, errors, lifecycle
from stripe_emulator.api import Route, out
from stripe_emulator.context import Ctx
from stripe_emulator.events import previous_attributes
from stripe_emulator.render import render
from stripe_emulator.routes_billing import lock_sub
from stripe_emulator.wire import JSONDict


def _base_url(ctx: Ctx) -> str:
    """Where this emulator's pages are served (the host the API call reached)."""
    return ctx.store.public_url or "http://127.0.0.1:12111"


# -- checkout sessions -----------------------------------------------------------------
def create_session(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    return out(ctx, checkout.create_session(ctx, p, _base_url(ctx)), p)


def get_session(ctx: Ctx, p: dict[str, Any], cs_id: str) -> JSONDict:
    session = ctx.store.get(cs_id, "checkout.session")
    checkout.expire_if_due(ctx, session)
    return out(ctx, session, p)


def expire_session(ctx: Ctx, p: dict[str, Any], cs_id: str) -> JSONDict:
    session = ctx.store.get(cs_id, "checkout.session")
    checkout.expire(ctx, session)
    return out(ctx, session, p)


def get_setup_intent(ctx: Ctx, p: dict[str, Any], seti_id: str) -> JSONDict:
    return out(ctx, ctx.store.get(seti_id, "setup_intent"), p)


# -- the customer portal -------------------------------------------------------------------
def create_portal_session(ctx: Ctx, p: dict[str, Any]) -> JSONDict:
    if not p.get("customer"):
        raise errors.missing_parameter("customer")
    customer = ctx.store.get(str(p["customer"]), "customer", "customer")
    session = checkout.portal_session(customer["id"], p.get("return_url"), ctx.now, _base_url(ctx))
    return out(ctx, ctx.store.add(session), p)


# -- resuming a paused subscription ----------------------------------------------------------
def resume_subscription(ctx: Ctx, p: dict[str, Any], sub_id: str) -> JSONDict:
    """https://docs.stripe.com/api/subscriptions/resume: a new period from now (the default
    `billing_cycle_anchor=now`), its invoice charged at once; with the default
    `resume_on_payment_attempt` a failed charge leaves it `past_due`, with
    `resume_on_payment_success` it stays `paused` and the card error is returned."""
    sub = ctx.store.get(sub_id, "subscription")
    if sub["status"] != "paused":
        raise errors.invalid_request(
            "Only a subscription with status `paused` can be resumed.", param="subscription"
        )
    behavior = str(p.get("payment_behavior") or "resume_on_payment_attempt")
    before = render(ctx.store, sub)
    lifecycle.start_period(ctx, sub, ctx.now, "subscription_cycle")
    if sub["status"] == "past_due" and behavior == "resume_on_payment_success":
        sub["status"] = "paused"
        raise errors.card_declined("generic_decline", invoice_id=sub["latest_invoice"])
    sub["billing_cycle_anchor"] = ctx.now
    ctx.emit("customer.subscription.resumed", sub)
    prev = previous_attributes(before, render(ctx.store, sub))
    if prev:
        ctx.emit("customer.subscription.updated", sub, prev)
    return out(ctx, sub, p)


ROUTES = [
    Route("POST", "/v1/checkout/sessions", create_session, "checkout.SessionCreateParams"),
    Route("GET", "/v1/checkout/sessions/<cs_id>", get_session, "checkout.SessionRetrieveParams"),
    Route(
        "POST",
        "/v1/checkout/sessions/<cs_id>/expire",
        expire_session,
        "checkout.SessionExpireParams",
    ),
    Route("GET", "/v1/setup_intents/<seti_id>", get_setup_intent, "SetupIntentRetrieveParams"),
    Route(
        "POST",
        "/v1/billing_portal/sessions",
        create_portal_session,
        "billing_portal.SessionCreateParams",
    ),
    Route(
        "POST",
        "/v1/subscriptions/<sub_id>/resume",
        resume_subscription,
        "SubscriptionResumeParams",
        lock_sub,
    ),
]
