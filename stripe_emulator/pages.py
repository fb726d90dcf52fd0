"""The emulator's own minimal Checkout and customer-portal pages (not Stripe's API).

Under `make run` a Checkout Session's `url` opens `/checkout/<id>` here: a form
where a newcomer "saves" one of Stripe's test cards, so the whole trial-to-paid
flow can be clicked through in a browser with no Stripe account. Card numbers
are Stripe's documented test numbers (https://docs.stripe.com/testing); each
maps to the test token the rest of the emulator knows.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from werkzeug.wrappers import Request, Response

from stripe_emulator import errors
from stripe_emulator.checkout import success_url
from stripe_emulator.store import Store
from stripe_emulator.wire import JSONDict

if TYPE_CHECKING:
    from stripe_emulator.emulator import StripeEmulator

PREFIXES = ("/checkout/", "/portal/")

# https://docs.stripe.com/testing#cards and #declined-payments
TEST_NUMBERS = {
    "4242424242424242": "pm_card_visa",
    "5555555555554444": "pm_card_mastercard",
    "378282246310005": "pm_card_amex",
    "4000000000000002": "pm_card_chargeDeclined",
    "4000000000009995": "pm_card_chargeDeclinedInsufficientFunds",
    "4000000000000341": "pm_card_chargeCustomerFail",
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:28rem;margin:3rem auto;color:#1f2933}"
    "label{display:block;margin:.75rem 0 .25rem}input{width:100%;padding:.5rem;font-size:1rem}"
    "button{margin-top:1rem;padding:.6rem 1.2rem;font-size:1rem;background:#635bff;color:#fff;"
    "border:0;border-radius:4px}.error{color:#b42318}.note{color:#616e7c;font-size:.85rem}"
)


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}'
        f"</title><style>{_STYLE}</style></head><body>{body}</body></html>"
    )
    return Response(html, status=status, mimetype="text/html")


def handle(emulator: StripeEmulator, request: Request) -> Response:
    store = emulator.store
    kind, _, obj_id = request.path.strip("/").partition("/")
    with store.mutex:
        obj = store.find(obj_id)
    if kind == "portal" and obj is not None and obj["object"] == "billing_portal.session":
        return _portal(store, obj)
    if kind != "checkout" or obj is None or obj["object"] != "checkout.session":
        return _page("Not found", "<h1>No such page</h1>", 404)
    if request.method == "POST":
        return _submit(emulator, obj, request)
    return _checkout(obj)


def _checkout(session: JSONDict, error: str | None = None, status: int = 200) -> Response:
    if session["status"] != "open":
        return _page("Checkout", f"<h1>This Checkout Session is {escape(session['status'])}</h1>")
    error_html = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    body = (
        "<h1>Add payment details</h1>"
        "<p>Save a card for future invoices (emulated Stripe Checkout, setup mode).</p>"
        f"{error_html}"
        f'<form method="post" action="/checkout/{escape(session["id"])}">'
        '<label for="card_number">Card number</label>'
        '<input id="card_number" name="card_number" value="4242 4242 4242 4242"'
        ' autocomplete="off" inputmode="numeric">'
        '<label for="expiry">Expiry (MM / YY)</label>'
        '<input id="expiry" name="expiry" value="12 / 34">'
        '<label for="cvc">CVC</label><input id="cvc" name="cvc" value="123">'
        '<button id="submit" type="submit">Save card</button></form>'
        '<p class="note">Test cards: 4242 4242 4242 4242 (Visa), 5555 5555 5555 4444'
        " (Mastercard), 4000 0000 0000 0002 (declined), 4000 0000 0000 0341 (saved, but"
        " every charge is declined).</p>"
    )
    return _page("Add payment details", body, status)


def _submit(emulator: StripeEmulator, session: JSONDict, request: Request) -> Response:
    number = "".join(ch for ch in request.form.get("card_number", "") if ch.isdigit())
    token = TEST_NUMBERS.get(number)
    if token is None:
        return _checkout(session, "Use one of Stripe's test card numbers listed below.", 402)
    try:
        emulator.complete_checkout(session["id"], token)
    except errors.StripeError as failure:
        return _checkout(session, failure.message, failure.status)
    target = success_url(session)
    return Response(status=303, headers={"Location": target}) if target else _done()


def _done() -> Response:
    return _page("Saved", "<h1>Your card was saved</h1>")


def _portal(store: Store, session: JSONDict) -> Response:
    """What the customer portal would show first: the default card, a way back."""
    found = store.find(str(session["customer"]), "customer")
    card = "none"
    pm_id = ((found or {}).get("invoice_settings") or {}).get("default_payment_method")
    pm = store.find(str(pm_id), "payment_method") if pm_id else None
    if pm is not None:
        c = pm["card"]
        card = f"{c['brand']} ending {c['last4']} ({c['exp_month']}/{c['exp_year']})"
    back = session.get("return_url") or ""
    body = (
        "<h1>Billing portal</h1>"
        f'<p>Default card: <strong id="card">{escape(card)}</strong></p>'
        f'<p><a id="return" href="{escape(back)}">Return</a></p>'
    )
    return _page("Billing portal", body)
