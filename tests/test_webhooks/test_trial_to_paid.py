"""From free trial to paying agency, over HTTP with the emulator and real RQ workers.

Seed 003: a trial allows one seat; the admin adds licenses and payment details, the
trial ends and the first invoice is charged, once, whatever Stripe's delivery does.
"""

from __future__ import annotations

from typing import Any

import pytest
from rq import Retry
from sqlalchemy import select

from seatsvc import enqueue
from seatsvc.billing.catalog import DEV_UNIT_AMOUNTS
from seatsvc.models import PlanUpgrade
from tests.test_billing.conftest import Billing
from tests.test_webhooks.conftest import Hooks

DAY = 86400
URL = "https://app.example/billing"
VISA = {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}


def trial_agency(bill: Billing, agency_id: str) -> None:
    """Created through the API with a trial; the worker provisions a trialing subscription."""
    bill.api.agency(agency_id, trial=True)
    bill.work_until(lambda: bill.agency(agency_id).billing_status == "trialing")


def upgrades(bill: Billing, agency_id: str) -> list[PlanUpgrade]:
    with bill.runtime.db.session() as session:
        query = select(PlanUpgrade).where(PlanUpgrade.agency_id == agency_id)
        return list(session.scalars(query.order_by(PlanUpgrade.id)))


def paid_invoices(bill: Billing, agency_id: str) -> list[dict[str, Any]]:
    customer = bill.agency(agency_id).stripe_customer_id
    return [
        i
        for i in bill.emu.objects("invoice")
        if i["customer"] == customer and i["amount_due"] > 0 and i["status"] == "paid"
    ]


def session_id(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[1]


def upgrade(bill: Billing, agency_id: str, base: int, voice: int = 0) -> Any:
    return bill.api.call(
        "POST",
        f"/v1/agencies/{agency_id}/upgrade",
        {"seats": {"base": base, "voice": voice}, "return_url": URL},
    )


def settled(hooks: Hooks, agency_id: str) -> None:
    hooks.settle()
    hooks.bill.work_until(lambda: hooks.bill.in_sync(agency_id))
    hooks.settle()


def test_upgrade_without_a_card_goes_through_checkout_and_charges_once(hooks: Hooks) -> None:
    bill, api = hooks.bill, hooks.bill.api
    # Every event three times, shuffled: completion and subscription events interleave.
    hooks.listen(duplicate=3, shuffle=True, shuffle_window=0.3)
    trial_agency(bill, "seed")
    api.join("m1", "seed")
    api.join("m2", "seed")
    assert api.seat_request("m1", "seed")["outcome"] == "activated"
    second = api.seat_request("m2", "seed")
    assert (second["outcome"], second["reason"]) == ("blocked", "trial_limit")

    first = upgrade(bill, "seed", base=3, voice=1)
    assert first.status_code == 202, first.get_json()
    answer = first.get_json()
    assert set(answer) == {"checkout_url", "expires_at"}
    assert answer["checkout_url"].startswith(bill.emu.base_url + "/checkout/cs_test_")
    again = upgrade(bill, "seed", base=3, voice=1)  # the admin clicked twice
    assert (again.status_code, again.get_json()) == (202, answer)
    assert bill.agency("seed").billing_status == "trialing"  # nothing bought yet
    # The link expired unused (Stripe's 24 h, or expired early): the same request
    # gets a fresh link, never the dead one.
    bill.client.v1.checkout.sessions.expire(session_id(answer["checkout_url"]))
    hooks.settle()
    fresh = upgrade(bill, "seed", base=3, voice=1)
    assert fresh.status_code == 202
    answer = fresh.get_json()
    assert answer["checkout_url"] != again.get_json()["checkout_url"]

    bill.emu.complete_checkout(session_id(answer["checkout_url"]))
    settled(hooks, "seed")

    agency = api.ok("GET", "/v1/agencies/seed")
    assert agency["billing_status"] == "active"
    assert agency["payment_method"] == VISA
    assert (agency["seats"]["base"]["purchased"], agency["seats"]["base"]["billed"]) == (3, 3)
    assert (agency["seats"]["voice"]["purchased"], agency["seats"]["voice"]["billed"]) == (1, 1)
    assert (bill.stripe_quantity("seed", "base"), bill.stripe_quantity("seed", "voice")) == (3, 1)
    subscription = bill.subscription("seed")
    assert subscription["status"] == "active" and subscription["default_payment_method"]
    customer = bill.emu.get(str(bill.agency("seed").stripe_customer_id))
    assert customer is not None
    assert (
        customer["invoice_settings"]["default_payment_method"]
        == subscription["default_payment_method"]
    )
    [invoice] = paid_invoices(bill, "seed")  # exactly one first invoice, paid
    assert invoice["amount_paid"] == 3 * DEV_UNIT_AMOUNTS["base"] + DEV_UNIT_AMOUNTS["voice"]
    assert len(bill.notifications("upgrade_confirmed")) == 1
    assert [u.status for u in upgrades(bill, "seed")] == ["superseded", "done"]
    deliveries = [
        d for d in bill.emu.deliveries() if d["event_type"] == "checkout.session.completed"
    ]
    assert len(deliveries) == 3 and all(d["ok"] for d in deliveries)

    # Stripe's events again, and the admin's request again: nothing more happens.
    bill.emu.resend_events(types=["checkout.session.completed", "customer.subscription.updated"])
    settled(hooks, "seed")
    repeated = upgrade(bill, "seed", base=3, voice=1)
    assert repeated.status_code == 200
    settled(hooks, "seed")
    assert len(paid_invoices(bill, "seed")) == 1
    assert len(bill.notifications("upgrade_confirmed")) == 1
    assert len(bill.notifications("payment_failed")) == 0
    assert api.ok("GET", "/v1/agencies/seed")["seats"]["base"]["purchased"] == 3
    # The blocked clinician can now be let in.
    assert api.ok("POST", "/v1/agencies/seed/members/m2/reinvite")["status"] == "invited"


def test_upgrade_with_a_saved_card_ends_the_trial_at_once(hooks: Hooks) -> None:
    bill, api = hooks.bill, hooks.bill.api
    hooks.listen()
    trial_agency(bill, "carded")
    setup = api.ok("POST", "/v1/agencies/carded/payment-setup", {"return_url": URL}, status=201)
    assert set(setup) == {"url", "expires_at"}
    # The same request body: the same Checkout Session (idempotency key from the body).
    assert api.ok("POST", "/v1/agencies/carded/payment-setup", {"return_url": URL}, 201) == setup
    bill.emu.complete_checkout(session_id(setup["url"]), "pm_card_mastercard")
    hooks.settle()
    agency = api.ok("GET", "/v1/agencies/carded")
    assert agency["payment_method"]["last4"] == "4444"
    assert agency["billing_status"] == "trialing"  # a card alone does not end the trial
    portal = api.ok("POST", "/v1/agencies/carded/billing-portal", {"return_url": URL}, 201)
    assert portal["url"].startswith(bill.emu.base_url + "/portal/bps_")

    answer = upgrade(bill, "carded", base=2)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["seats"]["base"]["purchased"] == 2
    settled(hooks, "carded")

    subscription = bill.subscription("carded")
    assert subscription["status"] == "active"
    assert subscription["trial_end"] is not None
    assert subscription["trial_end"] <= bill.emu.now()  # ended now, not in 14 days
    assert bill.agency("carded").billing_status == "active"
    [invoice] = paid_invoices(bill, "carded")
    assert invoice["amount_paid"] == 2 * DEV_UNIT_AMOUNTS["base"]
    assert len(bill.notifications("upgrade_confirmed")) == 1

    # The admin replaces the card in the customer portal: customer.updated, re-fetched.
    bill.give_card("carded", "pm_card_amex")
    hooks.settle()
    assert api.ok("GET", "/v1/agencies/carded")["payment_method"]["brand"] == "amex"
    assert len(paid_invoices(bill, "carded")) == 1


def test_a_trial_ending_without_a_card_pauses_and_reminds_once(hooks: Hooks) -> None:
    bill, api = hooks.bill, hooks.bill.api
    hooks.listen(duplicate=2)
    trial_agency(bill, "lapsed")
    api.join("m1", "lapsed")
    assert api.seat_request("m1", "lapsed")["outcome"] == "activated"
    ends = bill.emu.get(str(bill.agency("lapsed").stripe_subscription_id))
    assert ends is not None
    assert ends["trial_settings"]["end_behavior"]["missing_payment_method"] == "pause"

    bill.emu.advance(seconds=11 * DAY - 60)
    hooks.settle()
    assert bill.notifications("trial_will_end") == []  # not yet
    bill.emu.advance(seconds=120)  # three days before the end
    hooks.settle()
    [reminder] = bill.notifications("trial_will_end")
    assert reminder.payload["has_payment_method"] is False

    bill.emu.advance(seconds=3 * DAY)
    hooks.settle()
    assert bill.agency("lapsed").billing_status == "paused"
    bill.emu.resend_events(types=["customer.subscription.trial_will_end"])
    hooks.settle()
    assert len(bill.notifications("trial_will_end")) == 1  # once per trial

    api.join("m2", "lapsed")
    blocked = api.seat_request("m2", "lapsed")
    assert (blocked["outcome"], blocked["reason"]) == ("blocked", "subscription_inactive")
    assert api.ok("GET", "/v1/agencies/lapsed/members/m1")["status"] == "active"  # untouched
    invite = api.invite("m3", "lapsed")
    assert (invite.status_code, invite.get_json()["error"]["code"]) == (409, "invalid_state")
    assert paid_invoices(bill, "lapsed") == []

    # Payment details and the upgrade resume it: one charge, active again.
    answer = upgrade(bill, "lapsed", base=2)
    assert answer.status_code == 202
    bill.emu.complete_checkout(session_id(answer.get_json()["checkout_url"]))
    settled(hooks, "lapsed")
    assert bill.agency("lapsed").billing_status == "active"
    assert bill.subscription("lapsed")["status"] == "active"
    assert len(paid_invoices(bill, "lapsed")) == 1
    assert bill.stripe_quantity("lapsed", "base") == 2


def test_a_declined_first_charge_flags_emails_and_takes_no_seat(hooks: Hooks) -> None:
    bill, api = hooks.bill, hooks.bill.api
    hooks.listen(duplicate=2)
    trial_agency(bill, "broke")
    api.join("m1", "broke")
    assert api.seat_request("m1", "broke")["outcome"] == "activated"

    answer = upgrade(bill, "broke", base=3)
    assert answer.status_code == 202
    # Saved fine, but every charge on it is declined.
    bill.emu.complete_checkout(
        session_id(answer.get_json()["checkout_url"]), "pm_card_chargeCustomerFail"
    )
    settled(hooks, "broke")

    agency = api.ok("GET", "/v1/agencies/broke")
    assert agency["billing_attention"] == "payment_failed"
    assert agency["billing_status"] == "past_due"
    assert agency["seats"]["base"]["purchased"] == 3  # bought; Stripe's dunning collects
    assert api.ok("GET", "/v1/agencies/broke/members/m1")["status"] == "active"
    assert len(bill.notifications("payment_failed")) == 1
    assert bill.notifications("upgrade_confirmed") == []
    # No retry storm: one charge attempt, one upgrade call, nothing failed or waiting.
    customer = bill.agency("broke").stripe_customer_id
    charged = [
        i for i in bill.emu.objects("invoice") if i["customer"] == customer and i["amount_due"] > 0
    ]
    assert [(i["status"], i["attempt_count"]) for i in charged] == [("open", 1)]
    upgrade_calls = [
        r
        for r in bill.emu.requests(
            f"/v1/subscriptions/{bill.agency('broke').stripe_subscription_id}", "POST"
        )
        if "trial_end" in r["params"] and not r["replayed"]
    ]
    assert len(upgrade_calls) == 1
    assert bill.queue.failed_job_registry.count == 0
    assert [u.status for u in upgrades(bill, "broke")] == ["done"]


def test_an_upgrade_charge_behind_a_saved_500_is_seen_and_charged_once(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stripe ends the trial and charges, then answers 500 (saved under the key): the
    next try reads the subscription, sees the trial over, and never charges again."""
    monkeypatch.setattr(enqueue, "BILLING_RETRY", Retry(max=4, interval=[1]))
    bill, api = hooks.bill, hooks.bill.api
    hooks.listen()
    trial_agency(bill, "unlucky")
    setup = api.ok("POST", "/v1/agencies/unlucky/payment-setup", {"return_url": URL}, status=201)
    bill.emu.complete_checkout(session_id(setup["url"]), "pm_card_visa")
    hooks.settle()
    sub_path = f"/v1/subscriptions/{bill.agency('unlucky').stripe_subscription_id}"
    # The next two writes: the seats' sync and the upgrade's trial end (in either order).
    bill.emu.fail_next(mode="error_after", method="POST", path=sub_path, count=2)

    assert upgrade(bill, "unlucky", base=2).status_code == 200
    bill.work_until(lambda: bill.agency("unlucky").billing_status == "active", timeout=30)
    settled(hooks, "unlucky")

    writes = bill.emu.requests(sub_path, "POST")
    assert [w["status"] for w in writes].count(500) == 2  # applied; their answers saved 500s
    assert any(w["params"].get("trial_end") == "now" and w["status"] == 500 for w in writes)
    assert len({w["idempotency_key"] for w in writes}) == len(writes)  # never replayed
    assert bill.subscription("unlucky")["status"] == "active"
    [invoice] = paid_invoices(bill, "unlucky")
    assert invoice["amount_paid"] == 2 * DEV_UNIT_AMOUNTS["base"]
    assert [u.status for u in upgrades(bill, "unlucky")] == ["done"]
