"""The failure-injection control API: targets (method + exact path or prefix), counts,
probability, a real-time window and a mix of modes, over HTTP as other suites use it."""

from __future__ import annotations

import time
from collections import Counter

import pytest
import requests
import stripe
from emulator_support import Catalog, Raw

from stripe_emulator import StripeEmulator


def test_next_post_to_one_subscription_applies_then_500s(
    client: stripe.StripeClient, catalog: Catalog, raw: Raw, emulator: StripeEmulator
) -> None:
    sub = client.v1.subscriptions.create(
        params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
    )
    armed = raw.control(
        "POST",
        "failures",
        {"mode": "error_after", "method": "POST", "path": f"/v1/subscriptions/{sub.id}"},
    )
    assert [(r["modes"], r["count"], r["path"]) for r in armed] == [
        (["error_after"], 1, f"/v1/subscriptions/{sub.id}")
    ]
    client.v1.subscriptions.retrieve(sub.id)  # a GET does not match
    with pytest.raises(stripe.APIError):
        client.v1.subscriptions.update(sub.id, params={"metadata": {"k": "v"}})
    assert client.v1.subscriptions.retrieve(sub.id).metadata["k"] == "v"
    assert raw.control("GET", "failures") == []


def test_a_window_of_mixed_failures_on_a_share_of_posts(
    client: stripe.StripeClient, raw: Raw, emulator: StripeEmulator
) -> None:
    raw.control(
        "POST",
        "failures",
        {
            "mode": ["error_before", "lock_timeout", "lost_answer"],
            "probability": 0.5,
            "method": "POST",
            "for_seconds": 30,
            "seed": 3,
        },
    )
    outcomes: Counter[str] = Counter()
    for i in range(40):
        try:
            client.v1.customers.create(params={"name": f"c{i}"})
            outcomes["ok"] += 1
        except stripe.APIConnectionError:
            outcomes["lost"] += 1
        except stripe.RateLimitError:
            outcomes["429"] += 1
        except stripe.APIError:
            outcomes["500"] += 1
    client.v1.customers.list()  # GETs are not targeted
    assert set(outcomes) == {"ok", "lost", "429", "500"}, outcomes
    assert 8 <= sum(outcomes.values()) - outcomes["ok"] <= 32
    log = emulator.requests("/v1/customers", "POST")
    injected = Counter(e["injected"] for e in log if e["injected"])
    assert injected == {
        "error_before": outcomes["500"],
        "lock_timeout": outcomes["429"],
        "lost_answer": outcomes["lost"],
    }
    # lost answers were applied; 500s-before-the-write and 429s were not
    assert len(emulator.objects("customer")) == outcomes["ok"] + outcomes["lost"]
    [rule] = raw.control("GET", "failures")
    assert rule["count"] is None and rule["hits"] == sum(injected.values())


def test_a_window_ends_and_exact_paths_do_not_match_longer_ones(
    client: stripe.StripeClient, catalog: Catalog, raw: Raw
) -> None:
    raw.control("POST", "failures", {"status": 500, "path": "/v1/customers", "for_seconds": 0.3})
    client.v1.customers.retrieve(catalog.customer.id)  # /v1/customers/cus_… is not hit
    with pytest.raises(stripe.APIError):
        client.v1.customers.list()
    with pytest.raises(stripe.APIError):
        client.v1.customers.list()  # unlimited within the window
    time.sleep(0.35)
    client.v1.customers.list()
    assert raw.control("GET", "failures") == []


def test_bad_failure_rules_are_refused(raw: Raw) -> None:
    for body in ({"mode": "explode"}, {"probability": 2}, {"status": "soon"}, {"cuont": 1}):
        resp = requests.post(f"{raw.base_url}/_emulator/failures", json=body, timeout=5)
        assert resp.status_code == 400, body
