"""Pure parts: the form decoder against the SDK's own encoder, and the proration math."""

from __future__ import annotations

import threading
from typing import Any
from urllib.parse import urlencode

import stripe
from emulator_support import Catalog
from hypothesis import given, settings
from hypothesis import strategies as st
from stripe._encode import _api_encode  # the exact encoder the SDK puts on the wire

from stripe_emulator.billing import add_interval, prorated_amount
from stripe_emulator.wire import parse_form

keys = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8)
# (no booleans: the SDK writes True inside lists as "True" but top-level as "true")
scalars = st.one_of(st.text(max_size=10), st.integers(-(10**9), 10**9))
nested = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3),
        st.dictionaries(keys, inner, min_size=1, max_size=3),
    ),
    max_leaves=12,
)


def _as_wire_strings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _as_wire_strings(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_wire_strings(v) for v in value]
    return str(value)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys.filter(lambda k: k != "metadata"), nested, max_size=4))
def test_form_decoder_inverts_the_sdk_encoder(params: dict[str, Any]) -> None:
    body = urlencode(list(_api_encode(params)))
    assert parse_form(body) == _as_wire_strings(params)


def test_metadata_with_numeric_keys_stays_a_hash() -> None:
    assert parse_form("metadata[0]=a&metadata[1]=b") == {"metadata": {"0": "a", "1": "b"}}
    assert parse_form("expand[]=a&expand[]=b") == {"expand": ["a", "b"]}


@given(
    unit=st.integers(0, 100_000),
    qty=st.integers(0, 500),
    start=st.integers(1_600_000_000, 1_900_000_000),
    length=st.integers(1, 400 * 86400),
    offset=st.floats(0, 1),
)
def test_proration_is_bounded_and_exact_at_the_ends(
    unit: int, qty: int, start: int, length: int, offset: float
) -> None:
    end = start + length
    at = start + int(length * offset)
    amount = prorated_amount(unit, qty, start, end, at)
    assert 0 <= amount <= unit * qty
    assert prorated_amount(unit, qty, start, end, start) == unit * qty
    assert prorated_amount(unit, qty, start, end, end) == 0
    assert prorated_amount(unit, qty, start, end, min(end, at + 1)) <= amount


def test_monthly_periods_keep_the_day_and_clamp_to_month_end() -> None:
    jan_31 = 1769817600  # 2026-01-31T00:00:00Z
    assert add_interval(jan_31, "month") == 1772236800  # 2026-02-28
    assert add_interval(jan_31, "month", 2) == 1774915200  # 2026-03-31
    assert add_interval(jan_31, "year") == 1801353600  # 2027-01-31
    assert add_interval(jan_31, "week") == jan_31 + 7 * 86400


def test_many_concurrent_clients_keep_state_consistent(
    client: stripe.StripeClient, catalog: Catalog
) -> None:
    created: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(5):
            sub = client.v1.subscriptions.create(
                params={"customer": catalog.customer.id, "items": [{"price": catalog.base.id}]}
            )
            with lock:
                created.append(sub.id)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    listed = client.v1.subscriptions.list(params={"limit": 100}).data
    assert sorted(s.id for s in listed) == sorted(created)
    assert len(set(created)) == 40
    invoices = client.v1.invoices.list(params={"limit": 100}).data
    assert len(invoices) == 40 and all(i.status == "paid" for i in invoices)
