"""Chaos: a third of Stripe's writes fail, in every way Stripe fails, while agencies
are provisioned and change seats. Once the faults stop, every agency converges with
no duplicate customer, subscription or item, and Stripe holds what each one bought.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from rq import Retry

from seatsvc import enqueue
from tests.test_billing.conftest import Billing
from tests.test_billing.stripe_checks import assert_no_refusals, assert_stripe_holds_the_ledger
from workers import billing

FAST_RETRY = Retry(max=4, interval=[1])
AGENCIES = [f"chaos-{index}" for index in range(4)]
FAULT_WINDOW_SECONDS = 20
CONVERGE_SECONDS = 120
MODES = ["error_after", "error_before", "lock_timeout", "lost_answer"]


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> Retry:
    monkeypatch.setattr(enqueue, "BILLING_RETRY", FAST_RETRY)
    return FAST_RETRY


def seat_changes(agency_id: str) -> list[tuple[str, str, object]]:
    """What each agency does while Stripe misbehaves: logins, Voice seats, a reduction."""
    return [
        ("join", agency_id, f"{agency_id}-amy"),
        ("voice", agency_id, 1),
        ("join", agency_id, f"{agency_id}-bob"),
        ("voice", agency_id, 2),
        ("join", agency_id, f"{agency_id}-cyd"),
        ("base", agency_id, 5),
        ("voice", agency_id, 1),
        ("join", agency_id, f"{agency_id}-dan"),
    ]


def apply(bill: Billing, change: tuple[str, str, object]) -> None:
    kind, agency_id, value = change
    if kind == "join":
        bill.join_and_login([str(value)], agency_id)
    else:
        bill.api.ok("PUT", f"/v1/agencies/{agency_id}/seats/{kind}", {"quantity": value})


def test_every_agency_converges_after_a_third_of_stripe_writes_failed(
    bill: Billing, fast_retry: Retry
) -> None:
    for index, agency_id in enumerate(AGENCIES):
        trial = index == 0  # one trial agency: its subscription is created full
        bill.api.agency(agency_id, trial=trial, auto_add=True)
        if trial:
            bill.api.ok("PUT", f"/v1/agencies/{agency_id}/trial", {"seat_limit": 20})
    bill.emu.fail_next(
        mode=MODES, method="POST", probability=0.3, for_seconds=FAULT_WINDOW_SECONDS, seed=13
    )

    # Provisioning and seat changes, all under fire; the requeue sweep runs like the cron.
    todo = [change for agency_id in AGENCIES for change in seat_changes(agency_id)]
    todo = [todo[i] for i in sorted(range(len(todo)), key=lambda i: (i % 8, i))]  # interleave
    fault_ends = time.monotonic() + FAULT_WINDOW_SECONDS
    while time.monotonic() < fault_ends:
        for _ in range(2):
            if todo:
                apply(bill, todo.pop(0))
        bill.work()
        billing.requeue_pending_syncs(0)
        time.sleep(0.2)
    for change in todo:  # whatever the window left undone
        apply(bill, change)
    hits = Counter(e["injected"] for e in bill.emu.requests(method="POST") if e["injected"])
    bill.emu.clear_failures()

    deadline = time.monotonic() + CONVERGE_SECONDS
    while not all(bill.in_sync(agency_id) for agency_id in AGENCIES):
        assert time.monotonic() < deadline, {a: bill.api.seats(a) for a in AGENCIES}
        bill.work()
        billing.requeue_pending_syncs(0)
        time.sleep(0.2)

    assert sum(hits.values()) >= 4, hits  # the faults really happened
    assert len(hits) >= 2, hits
    for agency_id in AGENCIES:
        assert_stripe_holds_the_ledger(bill, agency_id)
        assert bill.outbox(agency_id).status == "done"
    assert_no_refusals(bill)
    assert bill.pools("chaos-1")["base"].purchased == 5  # the seat changes all landed
    assert bill.pools("chaos-1")["voice"].purchased == 1
