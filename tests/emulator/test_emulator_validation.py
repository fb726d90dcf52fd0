"""Parameters are checked against the SDK's own TypedDicts; auth and URLs like Stripe."""

from __future__ import annotations

import pytest
import stripe
from emulator_support import Catalog, Raw


def test_misspelled_top_level_parameter_is_rejected(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.create(params={"emial": "x@example.com"})  # type: ignore[typeddict-unknown-key]
    assert info.value.code == "parameter_unknown"
    assert info.value.param == "emial"
    assert info.value.http_status == 400
    assert "Received unknown parameter: emial" in str(info.value)


def test_misspelled_nested_parameter_is_rejected(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.create(
            params={
                "customer": catalog.customer.id,
                "items": [{"price": catalog.base.id, "quantityy": 2}],  # type: ignore[typeddict-unknown-key]
            }
        )
    assert info.value.code == "parameter_unknown"
    assert info.value.param == "items[0][quantityy]"


def test_value_outside_literal_is_rejected(client: stripe.StripeClient, catalog: Catalog) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.update(
            sub.id,
            params={"proration_behavior": "create_proration"},  # the missing "s"
        )
    assert info.value.code == "parameter_invalid_string"
    assert info.value.param == "proration_behavior"
    assert "always_invoice, create_prorations, or none" in str(info.value)
    # nothing changed, no event for the rejected call
    assert client.v1.events.list(params={"type": "customer.subscription.updated"}).data == []


def test_integer_and_required_parameters(raw: Raw, catalog: Catalog) -> None:
    bad_int = raw.call(
        "POST",
        "/v1/subscriptions",
        data={"customer": catalog.customer.id, "items[0][price]": "x", "items[0][quantity]": "two"},
    )
    assert bad_int.status_code == 400
    assert bad_int.json()["error"]["code"] == "parameter_invalid_integer"
    missing = raw.call("POST", "/v1/webhook_endpoints", data={"enabled_events[0]": "*"})
    assert missing.json()["error"] == {
        "code": "parameter_missing",
        "doc_url": "https://stripe.com/docs/error-codes/parameter-missing",
        "message": "Missing required param: url.",
        "param": "url",
        "request_log_url": missing.json()["error"]["request_log_url"],
        "type": "invalid_request_error",
    }


def test_bracket_notation_expand_forms(raw: Raw, catalog: Catalog) -> None:
    sub = raw.call(
        "POST",
        "/v1/subscriptions",
        data=[
            ("customer", catalog.customer.id),
            ("items[0][price]", catalog.base.id),
            ("items[0][quantity]", "2"),
            ("items[1][price]", catalog.voice.id),
            ("metadata[agency]", "a-1"),
            ("expand[]", "latest_invoice"),
            ("expand[]", "customer"),
        ],
    ).json()
    assert sub["metadata"] == {"agency": "a-1"}
    assert sub["latest_invoice"]["object"] == "invoice"
    assert sub["customer"]["object"] == "customer"
    assert [i["quantity"] for i in sub["items"]["data"]] == [2, 1]


def test_authentication(emulator: object, raw: Raw) -> None:
    import requests

    no_key = requests.get(raw.base_url + "/v1/customers", timeout=5)
    assert no_key.status_code == 401
    assert no_key.json()["error"]["type"] == "invalid_request_error"
    live_key = requests.get(
        raw.base_url + "/v1/customers",
        headers={"Authorization": "Bearer sk_live_abcdefghijklmnop"},
        timeout=5,
    )
    assert live_key.status_code == 401
    assert "Invalid API Key provided" in live_key.json()["error"]["message"]
    basic = requests.get(raw.base_url + "/v1/customers", auth=("sk_test_123", ""), timeout=5)
    assert basic.status_code == 200


def test_sdk_reports_authentication_error(emulator: object, raw: Raw) -> None:
    bad = stripe.StripeClient(
        "sk_live_nope_nope_nope", base_addresses={"api": raw.base_url}, max_network_retries=0
    )
    with pytest.raises(stripe.AuthenticationError):
        bad.v1.customers.list()


def test_unknown_url_is_404(raw: Raw) -> None:
    resp = raw.call("GET", "/v1/nothing_here")
    assert resp.status_code == 404
    assert resp.json()["error"]["message"].startswith("Unrecognized request URL (GET: /v1/")


def test_expand_of_a_non_expandable_property_is_rejected(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.customers.retrieve(catalog.customer.id, params={"expand": ["email"]})
    assert "cannot be expanded (email)" in str(info.value)
    with pytest.raises(stripe.InvalidRequestError) as info:
        client.v1.subscriptions.list(params={"expand": ["latest_invoice"]})
    assert "data.latest_invoice" in str(info.value)
    expanded = client.v1.customers.retrieve(
        catalog.customer.id, params={"expand": ["invoice_settings.default_payment_method"]}
    )
    assert expanded.invoice_settings.default_payment_method.card.last4 == "4242"
    listed = client.v1.subscriptions.list(params={"expand": ["data.customer"]})
    assert listed.data == []
