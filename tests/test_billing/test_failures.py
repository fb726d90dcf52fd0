"""Stripe failing, declining and rate limiting: the worker converges, never storms.

Retries go through RQ's `Retry` and rq's scheduler (the burst worker moves due
retries back); the intervals are shortened for the test by replacing the
`seatsvc.enqueue.BILLING_RETRY`, which every enqueue reads at call time.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Retry
from rq.registry import FailedJobRegistry, ScheduledJobRegistry

from seatsvc import enqueue
from seatsvc.billing.limits import UPDATES_PER_WINDOW
from seatsvc.models import BillingOutbox, utcnow
from tests.test_billing.conftest import Billing
from workers import billing

FAST_RETRY = Retry(max=4, interval=[1])


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> Retry:
    monkeypatch.setattr(enqueue, "BILLING_RETRY", FAST_RETRY)
    return FAST_RETRY


def seat_added(bill: Billing, agency_id: str, member_id: str) -> None:
    (outcome,) = bill.join_and_login([member_id], agency_id)
    assert outcome["outcome"] == "auto_added", outcome


@pytest.mark.parametrize("status", [500, 429])
def test_stripe_failing_the_next_calls_is_retried_until_it_converges(
    bill: Billing, fast_retry: Retry, status: int
) -> None:
    bill.active_agency("flaky")
    sub_path = f"/v1/subscriptions/{bill.agency('flaky').stripe_subscription_id}"
    bill.emu.fail_next(status, count=2, path_prefix=sub_path, method="POST")

    seat_added(bill, "flaky", "amy")
    seat_added(bill, "flaky", "bob")
    bill.work()  # the first try and its immediate failure
    row = bill.outbox("flaky")
    assert row.status == "pending"
    assert row.attempts >= 1
    assert str(status) in (row.last_error or "")
    assert bill.agency("flaky").billing_attention is None

    bill.work_until(lambda: bill.in_sync("flaky"), timeout=20)

    attempts = bill.emu.requests(sub_path, "POST")
    assert [e["status"] for e in attempts] == [status, status, 200]
    if status == 500:
        # Stripe saved each 500 under its key and would replay it forever: every try
        # after one is a new request, under a new key, after a fresh look at Stripe.
        assert len({e["idempotency_key"] for e in attempts}) == 3
    else:
        assert len({e["idempotency_key"] for e in attempts}) >= 1  # a 429 is not saved
    assert not any(e["replayed"] for e in attempts)
    assert bill.stripe_quantity("flaky") == 2
    assert bill.outbox("flaky").attempts == 0
    assert bill.outbox("flaky").last_error is None
    assert FailedJobRegistry(queue=bill.queue).get_job_ids() == []


def test_a_lost_answer_is_learned_from_stripe_not_sent_again(
    bill: Billing, fast_retry: Retry
) -> None:
    """Stripe carried out the update but the answer never came back (connection dropped):
    the retry looks at the subscription first, finds the seats there, and sends nothing."""
    bill.active_agency("lost")
    customer_id = bill.agency("lost").stripe_customer_id
    assert customer_id
    sub_path = f"/v1/subscriptions/{bill.agency('lost').stripe_subscription_id}"
    bill.emu.fail_next("timeout", count=1, path_prefix=sub_path, method="POST",
                       execute=True, seconds=0.1)  # fmt: skip

    seat_added(bill, "lost", "amy")
    bill.work_until(lambda: bill.in_sync("lost"), timeout=20)

    attempts = bill.emu.requests(sub_path, "POST")
    assert [(e["status"], e["replayed"]) for e in attempts] == [("dropped", False)]
    assert bill.stripe_quantity("lost") == 1
    assert len(bill.quantity_updates("lost")) == 0  # the only real one lost its answer
    retrieves = bill.emu.requests(sub_path, "GET")
    assert retrieves and retrieves[-1]["time"] >= attempts[-1]["time"]
    assert len(bill.emu.store.quantity_updates[bill.subscription("lost")["id"]]) == 1
    lines = bill.pending_lines(customer_id)
    assert sorted(line["quantity"] for line in lines if line["amount"] > 0) == [1]


def test_stripe_refusing_the_request_fails_once_and_flags_the_sync(bill: Billing) -> None:
    """A 400 cannot be helped by retrying: no retry, the seats show `failed`."""
    bill.active_agency("refused")
    sub_id = bill.agency("refused").stripe_subscription_id
    bill.client.v1.subscriptions.cancel(str(sub_id))  # updates on it are now refused
    bill.emu.clear_requests()

    seat_added(bill, "refused", "amy")
    bill.work()
    bill.work()

    assert len(bill.emu.requests(f"/v1/subscriptions/{sub_id}", "POST")) == 1
    row = bill.outbox("refused")
    assert (row.status, row.attempts) == ("failed", 1)
    assert bill.api.seats("refused")["sync"] == "failed"
    failed = FailedJobRegistry(queue=bill.queue).get_job_ids()
    assert failed == [f"billing-sync-{enqueue.rq_safe('refused')}"]


@pytest.mark.parametrize("mode", ["immediate", "daily"])
def test_a_declined_card_flags_the_agency_once_and_keeps_the_clinician(
    bill: Billing, mode: str
) -> None:
    bill.runtime.config = bill.runtime.config.with_overrides(billing_invoice_mode=mode)
    bill.active_agency("declined", seats=1)  # the first seat is paid for
    bill.give_card("declined", "pm_card_chargeCustomerFail")  # then the card starts failing
    bill.api.join("first", "declined")
    assert bill.api.seat_request("first", "declined")["outcome"] == "activated"

    seat_added(bill, "declined", "amy")
    bill.work_until(lambda: bill.in_sync("declined"))
    if mode == "daily":
        assert bill.outbox("declined").invoice_needed
        assert billing.invoice_due() == 1
    bill.work()
    # More of everything that could retry: sweeps, the daily cron, more workers.
    billing.requeue_pending_syncs(0)
    billing.invoice_due()
    bill.work()
    bill.work()

    pays = bill.emu.requests("/v1/invoices/", "POST")
    assert [e["path"].rsplit("/", 1)[1] for e in pays].count("pay") == 1
    assert [e["status"] for e in pays if e["path"].endswith("/pay")] == [402]
    assert len(bill.emu.requests("/v1/invoices", "POST")) == 3  # create, finalize, pay
    member = bill.api.ok("GET", "/v1/agencies/declined/members/amy")
    assert member["status"] == "active"
    view = bill.api.ok("GET", "/v1/agencies/declined")
    assert view["billing_attention"] == "payment_failed"
    assert view["seats"]["base"]["billed"] == 2
    (note,) = bill.notifications("payment_failed")
    assert note.agency_id == "declined"
    assert "card_declined" in note.payload["reason"] or "decline" in note.payload["reason"]
    assert not bill.outbox("declined").invoice_needed
    assert FailedJobRegistry(queue=bill.queue).get_job_ids() == []
    assert ScheduledJobRegistry(queue=bill.queue).get_job_ids() == []


def test_a_paid_invoice_holds_one_line_per_seat_change(bill: Billing) -> None:
    bill.runtime.config = bill.runtime.config.with_overrides(billing_invoice_mode="immediate")
    bill.active_agency("paid", seats=1)
    earlier = {invoice["id"] for invoice in bill.emu.objects("invoice")}
    bill.api.join("first", "paid")
    bill.api.seat_request("first", "paid")
    for member in ("amy", "bob", "cyd"):
        bill.api.join(member, "paid")
    for member in ("amy", "bob", "cyd"):  # within the debounce: one Stripe update
        bill.api.seat_request(member, "paid")
    bill.work_until(lambda: bill.in_sync("paid") and not bill.outbox("paid").invoice_needed)

    (invoice,) = [i for i in bill.emu.objects("invoice") if i["id"] not in earlier]
    assert invoice["status"] == "paid"
    amounts = sorted(line["amount"] for line in invoice["lines"]["data"])
    assert len(amounts) == 2  # unused time on 1 seat, remaining time on 4
    assert amounts[0] < 0 < amounts[1]
    assert len(bill.quantity_updates("paid")) == 1
    assert bill.agency("paid").billing_attention is None


def test_the_hourly_budget_defers_the_update_instead_of_calling_stripe(bill: Billing) -> None:
    bill.active_agency("busy")

    def spend_the_window(session: object) -> None:
        row = session.get(BillingOutbox, "busy")  # type: ignore[attr-defined]
        row.window_started_at = utcnow() - timedelta(minutes=10)
        row.window_updates = UPDATES_PER_WINDOW

    bill.runtime.transaction(spend_the_window)
    seat_added(bill, "busy", "amy")
    outcome = billing.sync_agency("busy")

    assert outcome.startswith("hourly Stripe budget used")
    assert bill.quantity_updates("busy") == []
    scheduled = ScheduledJobRegistry(queue=bill.queue).get_job_ids()
    assert f"billing-sync-{enqueue.rq_safe('busy')}-later" in scheduled
    assert bill.api.seats("busy")["sync"] == "pending"

    # An hour later (the window rolled over) the deferred job sends it.
    def roll_over(session: object) -> None:
        row = session.get(BillingOutbox, "busy")  # type: ignore[attr-defined]
        row.window_started_at = utcnow() - timedelta(hours=1, seconds=1)

    bill.runtime.transaction(roll_over)
    assert billing.sync_agency("busy") == "synced"
    assert bill.stripe_quantity("busy") == 1
    assert bill.outbox("busy").window_updates == 1
