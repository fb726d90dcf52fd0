"""Billing against Stripe's real semantics: saved 500s, lost answers, replays, changed bodies.

Stripe saves the first answer under an idempotency key, 500s included, refuses a
key with another body, and refuses two items with one price. Each test breaks one
write in the emulator (over HTTP, real RQ workers) in a way the old sync could not
survive, and ends with Stripe holding exactly one customer and one subscription for
the agency, every quantity equal to what the agency bought, and `sync: in_sync`.
"""

from __future__ import annotations

import time

import pytest
from rq import Retry

from seatsvc import enqueue
from seatsvc.billing import reconcile
from tests.test_billing.conftest import Billing
from tests.test_billing.stripe_checks import (
    assert_no_refusals,
    assert_stripe_holds_the_ledger,
    ours,
)
from workers import context

FAST_RETRY = Retry(max=4, interval=[1])


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> Retry:
    monkeypatch.setattr(enqueue, "BILLING_RETRY", FAST_RETRY)
    return FAST_RETRY


def new_agency(bill: Billing, agency_id: str, *, trial: bool = False) -> None:
    bill.api.agency(agency_id, trial=trial)


# ---- 500 after the write was applied -----------------------------------------------------


def test_a_customer_created_behind_a_saved_500_is_adopted_not_created_again(
    bill: Billing, fast_retry: Retry
) -> None:
    new_agency(bill, "c500")
    bill.emu.fail_next(mode="error_after", method="POST", path="/v1/customers")

    bill.work()  # the customer is made in Stripe, the answer is a 500 saved under the key
    assert len(ours(bill.emu.objects("customer"), "c500")) == 1
    assert bill.agency("c500").stripe_customer_id is None
    bill.work_until(lambda: bill.in_sync("c500"), timeout=30)

    creates = bill.emu.requests("/v1/customers", "POST")
    assert [e["status"] for e in creates if e["path"] == "/v1/customers"] == [500]
    assert not any(e["replayed"] for e in bill.emu.requests(method="POST"))
    assert_stripe_holds_the_ledger(bill, "c500")
    assert_no_refusals(bill)


def test_a_subscription_created_behind_a_saved_500_is_adopted_not_created_again(
    bill: Billing, fast_retry: Retry
) -> None:
    new_agency(bill, "s500", trial=True)
    bill.emu.fail_next(mode="error_after", method="POST", path="/v1/subscriptions")

    bill.work()
    assert len(ours(bill.emu.objects("subscription"), "s500")) == 1
    bill.work_until(lambda: bill.in_sync("s500"), timeout=30)

    creates = [e for e in bill.emu.requests("/v1/subscriptions", "POST")
               if e["path"] == "/v1/subscriptions"]  # fmt: skip
    assert [e["status"] for e in creates] == [500]
    assert bill.agency("s500").billing_status == "trialing"
    assert_stripe_holds_the_ledger(bill, "s500")
    assert_no_refusals(bill)


def test_a_quantity_update_applied_behind_a_saved_500_is_not_sent_again(
    bill: Billing, fast_retry: Retry
) -> None:
    bill.active_agency("q500")
    sub_path = f"/v1/subscriptions/{bill.agency('q500').stripe_subscription_id}"
    bill.emu.fail_next(mode="error_after", method="POST", path=sub_path)

    bill.api.ok("PUT", "/v1/agencies/q500/seats/base", {"quantity": 3})
    bill.work()
    assert bill.stripe_quantity("q500") == 3  # applied; we were told 500
    assert not bill.in_sync("q500")
    bill.work_until(lambda: bill.in_sync("q500"), timeout=30)

    writes = bill.emu.requests(sub_path, "POST")
    assert [(e["status"], e["replayed"]) for e in writes] == [(500, False)]
    assert bill.emu.requests(sub_path, "GET")  # learned from a fresh retrieve
    assert len(bill.emu.store.quantity_updates[bill.subscription("q500")["id"]]) == 1
    assert_stripe_holds_the_ledger(bill, "q500")


# ---- a body that changes between a lost answer and its retry ------------------------------


def test_a_rename_between_a_lost_customer_create_and_its_retry(
    bill: Billing, fast_retry: Retry
) -> None:
    new_agency(bill, "renamed")
    bill.emu.fail_next(mode="lost_answer", method="POST", path="/v1/customers")
    bill.work()  # created in Stripe; the connection dropped before the answer
    bill.api.ok(
        "PUT",
        "/v1/agencies/renamed",
        {"name": "Renamed Clinic", "admin_emails": ["billing@renamed.example"], "trial": False},
    )

    bill.work_until(lambda: bill.in_sync("renamed"), timeout=30)

    creates = [e for e in bill.emu.requests("/v1/customers", "POST")
               if e["path"] == "/v1/customers"]  # fmt: skip
    assert [e["status"] for e in creates] == ["dropped"]
    assert_stripe_holds_the_ledger(bill, "renamed")
    assert_no_refusals(bill)


def test_a_trial_seat_change_between_a_lost_subscription_create_and_its_retry(
    bill: Billing, fast_retry: Retry
) -> None:
    new_agency(bill, "trialer", trial=True)
    bill.emu.fail_next(mode="lost_answer", method="POST", path="/v1/subscriptions")
    bill.work()  # the trial subscription exists in Stripe; we never heard of it
    bill.api.ok("PUT", "/v1/agencies/trialer/trial", {"seat_limit": 2})
    bill.api.ok("PUT", "/v1/agencies/trialer/seats/voice", {"quantity": 1})

    bill.work_until(lambda: bill.in_sync("trialer"), timeout=30)

    creates = [e for e in bill.emu.requests("/v1/subscriptions", "POST")
               if e["path"] == "/v1/subscriptions"]  # fmt: skip
    assert [e["status"] for e in creates] == ["dropped"]
    assert bill.agency("trialer").billing_status == "trialing"
    assert bill.stripe_quantity("trialer", "voice") == 1
    assert_stripe_holds_the_ledger(bill, "trialer")
    assert_no_refusals(bill)


def test_an_item_id_stored_by_a_webhook_between_a_lost_answer_and_its_retry(
    bill: Billing, fast_retry: Retry
) -> None:
    bill.active_agency("hooked", seats=1)
    sub_path = f"/v1/subscriptions/{bill.agency('hooked').stripe_subscription_id}"
    bill.emu.fail_next(mode="lost_answer", method="POST", path=sub_path)
    bill.api.ok("PUT", "/v1/agencies/hooked/seats/voice", {"quantity": 1})
    bill.work()  # the Voice item is added by price; the answer is lost
    assert bill.pools("hooked")["voice"].stripe_item_id is None

    # The customer.subscription.updated webhook: re-fetch and apply (its handler's path).
    gateway = context.gateway(bill.runtime)
    reconcile.heal_agency(bill.runtime, gateway, "hooked", cause="evt_webhook", actor="stripe")
    assert bill.pools("hooked")["voice"].stripe_item_id is not None

    bill.work_until(lambda: bill.in_sync("hooked"), timeout=30)

    assert [e["status"] for e in bill.emu.requests(sub_path, "POST")] == ["dropped"]
    assert_stripe_holds_the_ledger(bill, "hooked")
    assert_no_refusals(bill)


def test_the_first_voice_seat_after_a_lost_answer_is_not_added_twice(
    bill: Billing, fast_retry: Retry
) -> None:
    """The Voice item exists in Stripe but its id never reached us, and the agency
    changed again before the retry: adding the price again would be refused."""
    bill.active_agency("voice", seats=1)
    sub_path = f"/v1/subscriptions/{bill.agency('voice').stripe_subscription_id}"
    bill.emu.fail_next(mode="lost_answer", method="POST", path=sub_path)
    bill.api.ok("PUT", "/v1/agencies/voice/seats/voice", {"quantity": 1})
    bill.work()
    bill.api.ok("PUT", "/v1/agencies/voice/seats/voice", {"quantity": 2})

    bill.work_until(lambda: bill.in_sync("voice"), timeout=30)

    assert bill.stripe_quantity("voice", "voice") == 2
    updates = bill.quantity_updates("voice")
    assert updates and all("price" not in item for item in updates[-1]["params"]["items"])
    assert_stripe_holds_the_ledger(bill, "voice")
    assert_no_refusals(bill)


# ---- a replayed answer is not the present ---------------------------------------------------


def test_a_dashboard_change_after_a_lost_answer_is_never_reported_in_sync(
    bill: Billing, fast_retry: Retry
) -> None:
    bill.active_agency("dash", seats=1)
    sub_path = f"/v1/subscriptions/{bill.agency('dash').stripe_subscription_id}"
    item_id = bill.pools("dash")["base"].stripe_item_id
    assert item_id
    bill.emu.fail_next(mode="lost_answer", method="POST", path=sub_path)
    bill.api.ok("PUT", "/v1/agencies/dash/seats/base", {"quantity": 2})
    bill.work()  # Stripe holds 2; we never heard
    bill.emu.dashboard_set_quantity(item_id, 5)  # then someone changes it by hand

    deadline = time.monotonic() + 30  # the retry is due a second after the failure
    while True:
        bill.work()
        seats = bill.api.seats("dash")
        if seats["sync"] == "in_sync":
            # In sync means Stripe holds it: the ledger adopted 5 or re-asserted its 2.
            assert bill.stripe_quantity("dash") == seats["purchased"] == seats["billed"]
            break
        assert time.monotonic() < deadline, f"never converged: {seats}"
        time.sleep(0.1)

    writes = bill.emu.requests(sub_path, "POST")
    assert not any(e["replayed"] for e in writes)  # a new key after the lost answer
    assert_stripe_holds_the_ledger(bill, "dash")


# ---- invoices: each try under its own keys, an earlier try's invoice finished ----------------


def invoiced(bill: Billing, agency_id: str) -> bool:
    return bill.in_sync(agency_id) and not bill.outbox(agency_id).invoice_needed


def new_invoices(bill: Billing, customer_id: str, earlier: set[str]) -> list[dict[str, object]]:
    return [
        invoice
        for invoice in bill.emu.objects("invoice")
        if invoice["customer"] == customer_id and invoice["id"] not in earlier
    ]


def test_an_invoice_created_behind_a_saved_500_is_finished_not_made_again(
    bill: Billing, fast_retry: Retry
) -> None:
    bill.active_agency("inv500", seats=1)
    bill.runtime.config = bill.runtime.config.with_overrides(billing_invoice_mode="immediate")
    customer_id = str(bill.agency("inv500").stripe_customer_id)
    earlier = {invoice["id"] for invoice in bill.emu.objects("invoice")}
    bill.emu.fail_next(mode="error_after", method="POST", path="/v1/invoices")

    bill.api.ok("PUT", "/v1/agencies/inv500/seats/base", {"quantity": 3})
    bill.work_until(lambda: invoiced(bill, "inv500"), timeout=30)

    (invoice,) = new_invoices(bill, customer_id, earlier)
    assert invoice["status"] == "paid"
    creates = bill.emu.requests("/v1/invoices", "POST")
    assert [e["status"] for e in creates if e["path"] == "/v1/invoices"] == [500]
    assert not any(e["replayed"] for e in creates)
    assert bill.agency("inv500").billing_attention is None


def test_a_finalize_and_a_payment_applied_behind_saved_500s_charge_once(
    bill: Billing, fast_retry: Retry
) -> None:
    bill.active_agency("pay500", seats=1)
    bill.runtime.config = bill.runtime.config.with_overrides(billing_invoice_mode="immediate")
    customer_id = str(bill.agency("pay500").stripe_customer_id)
    earlier = {invoice["id"] for invoice in bill.emu.objects("invoice")}
    bill.emu.fail_next(mode="error_after", method="POST", path_prefix="/v1/invoices/", count=2)

    bill.api.ok("PUT", "/v1/agencies/pay500/seats/base", {"quantity": 3})
    bill.work_until(lambda: invoiced(bill, "pay500"), timeout=30)

    (invoice,) = new_invoices(bill, customer_id, earlier)
    assert invoice["status"] == "paid"
    calls = bill.emu.requests("/v1/invoices/", "POST")
    assert [(e["path"].rsplit("/", 1)[1], e["status"]) for e in calls] == [
        ("finalize", 500),
        ("pay", 500),
    ]  # both applied; each retry looked at Stripe first and found nothing left to do
    assert bill.agency("pay500").billing_attention is None
