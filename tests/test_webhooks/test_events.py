"""Stripe's events, delivered by the emulator over HTTP and handled by real RQ workers.

Duplicates are handled once, any delivery order ends in the same ledger, a
change made in Stripe's dashboard is adopted (and flagged when it leaves
fewer seats than members holding one), a pending local change wins over it.
"""

from __future__ import annotations

import json
from typing import Any

from seatsvc import enqueue
from seatsvc.types import NotificationKind
from tests.test_billing.conftest import Billing, stop_group
from tests.test_webhooks.conftest import Hooks

UPDATED = "customer.subscription.updated"


def base_item(bill: Billing, agency_id: str) -> str:
    item = bill.pools(agency_id)["base"].stripe_item_id
    assert item
    return item


def purchased(bill: Billing, agency_id: str) -> tuple[int, int | None]:
    pool = bill.pools(agency_id)["base"]
    return pool.purchased, pool.billed


def updated_events(bill: Billing, agency_id: str) -> list[dict[str, Any]]:
    """This agency's subscription.updated events, oldest first."""
    sub_id = bill.agency(agency_id).stripe_subscription_id
    return [e for e in bill.emu.events(UPDATED) if e["data"]["object"]["id"] == sub_id]


def members_holding_seats(bill: Billing, agency_id: str) -> int:
    body = bill.api.ok("GET", f"/v1/agencies/{agency_id}")
    used: int = body["seats"]["base"]["used"]
    return used


def test_a_dashboard_change_delivered_three_times_is_adopted_once(hooks: Hooks) -> None:
    bill = hooks.bill
    bill.active_agency("dash", seats=2)
    hooks.listen(duplicate=3)
    bill.emu.dashboard_set_quantity(base_item(bill, "dash"), 5)
    hooks.settle()

    assert purchased(bill, "dash") == (5, 5)
    [change] = hooks.ledger("dash", "external_change")
    assert (change.delta, change.purchased_after, change.actor) == (3, 5, "stripe")
    event = updated_events(bill, "dash")[-1]  # the dashboard's (earlier ones: provisioning)
    deliveries = [d for d in bill.emu.deliveries() if d["event_id"] == event["id"]]
    assert len(deliveries) == 3
    assert all(d["ok"] for d in deliveries)
    row = hooks.row(event["id"])
    assert (row.status, row.attempts, row.agency_id) == ("processed", 1, "dash")
    assert bill.quantity_updates("dash") == []  # adopting never writes back to Stripe
    ledger = bill.api.ok("GET", "/v1/agencies/dash/seat-events")["events"]
    assert ledger[0]["type"] == "external_change"
    assert bill.api.ok("GET", "/v1/agencies/dash")["seats"]["base"]["sync"] == "in_sync"


def test_a_dashboard_reduction_below_the_members_evicts_nobody_and_tells_the_admins(
    hooks: Hooks,
) -> None:
    bill = hooks.bill
    bill.active_agency("full", seats=3, auto_add=False)
    outcomes = bill.join_and_login(["c1", "c2", "c3"], "full")
    assert {o["outcome"] for o in outcomes} == {"activated"}
    hooks.listen()
    bill.emu.dashboard_set_quantity(base_item(bill, "full"), 1)
    hooks.settle()

    assert purchased(bill, "full") == (1, 1)
    assert members_holding_seats(bill, "full") == 3  # nobody evicted
    assert bill.agency("full").billing_attention == "over_capacity"
    [email] = bill.notifications(NotificationKind.OVER_CAPACITY)
    assert email.payload == {"seat_type": "base", "purchased": 1, "used": 3, "previous": 3}

    bill.emu.resend_events()  # every event again: nothing new happens
    hooks.settle()
    assert len(bill.notifications(NotificationKind.OVER_CAPACITY)) == 1
    assert len(hooks.ledger("full", "external_change")) == 1

    # The admin buys seats again: the flag clears with the next look at Stripe.
    bill.api.ok("PUT", "/v1/agencies/full/seats/base", {"quantity": 3})
    bill.work_until(lambda: bill.in_sync("full"))
    hooks.settle()
    assert bill.agency("full").billing_attention is None


def test_a_difference_while_a_local_change_is_pending_lets_the_billing_sync_win(
    hooks: Hooks,
) -> None:
    bill = hooks.bill
    bill.active_agency("race", seats=2)
    hooks.listen()
    bill.emu.dashboard_set_quantity(base_item(bill, "race"), 7)
    assert bill.emu.wait_for_webhooks()
    bill.api.ok("PUT", "/v1/agencies/race/seats/base", {"quantity": 4})  # not yet in Stripe
    hooks.settle()
    bill.work_until(lambda: bill.in_sync("race"))
    hooks.settle()

    assert purchased(bill, "race") == (4, 4)
    assert bill.stripe_quantity("race") == 4
    assert hooks.ledger("race", "external_change") == []
    assert all(row.status == "processed" for row in hooks.rows() if row.type == UPDATED)


def test_older_events_handled_after_newer_ones_never_move_the_ledger_back(
    hooks: Hooks,
) -> None:
    bill = hooks.bill
    bill.active_agency("rev", seats=2)
    hooks.listen(enabled=False)
    for quantity in (5, 3, 6):
        bill.emu.dashboard_set_quantity(base_item(bill, "rev"), quantity)
    events = updated_events(bill, "rev")[-3:]
    for event in reversed(events):  # newest first: each older one arrives late
        assert hooks.post(json.dumps(event).encode()).status_code == 200
        bill.work()
        assert purchased(bill, "rev") == (6, 6)
    [change] = hooks.ledger("rev", "external_change")
    assert (change.delta, change.purchased_after) == (4, 6)
    assert [hooks.row(e["id"]).status for e in events] == ["processed"] * 3


def test_a_shuffled_duplicated_stream_ends_in_the_same_ledger_as_the_ordered_one(
    hooks: Hooks,
) -> None:
    bill = hooks.bill
    quantities = (5, 3, 6, 4, 7)
    hooks.listen()
    bill.active_agency("ordered", seats=2)
    bill.active_agency("shuffled", seats=2)
    hooks.settle()

    for quantity in quantities:  # one at a time: each event handled before the next change
        bill.emu.dashboard_set_quantity(base_item(bill, "ordered"), quantity)
        hooks.settle()

    bill.emu.webhook_mode(shuffle=True, shuffle_window=0.6, duplicate=2)
    worker = bill.spawn_worker()  # handles events while later ones are still arriving
    try:
        for quantity in quantities:
            bill.emu.dashboard_set_quantity(base_item(bill, "shuffled"), quantity)
        hooks.settle()
    finally:
        stop_group(worker)

    for agency_id in ("ordered", "shuffled"):
        assert purchased(bill, agency_id) == (7, 7), agency_id
        assert bill.stripe_quantity(agency_id) == 7
        changes = hooks.ledger(agency_id, "external_change")
        assert sum(change.delta for change in changes) == 5, agency_id
        assert changes[-1].purchased_after == 7
        running = 2
        for change in changes:  # each entry follows from the one before it
            running += change.delta
            assert change.purchased_after == running
    assert len(hooks.ledger("ordered", "external_change")) == len(quantities)
    assert all(row.status in ("processed", "ignored") for row in hooks.rows())


def test_a_failed_renewal_payment_flags_the_agency_and_emails_once_per_invoice(
    hooks: Hooks,
) -> None:
    bill = hooks.bill
    bill.active_agency("card", seats=1, card="pm_card_chargeCustomerFail")
    hooks.listen(duplicate=2)
    bill.emu.advance(seconds=32 * 86400)  # the renewal invoice is charged, and declined
    hooks.settle()

    agency = bill.agency("card")
    assert agency.billing_attention == "payment_failed"
    assert agency.billing_status == "past_due"
    [email] = bill.notifications(NotificationKind.PAYMENT_FAILED)
    [failed] = bill.emu.events("invoice.payment_failed")
    invoice_id = failed["data"]["object"]["id"]
    assert email.dedupe_key == f"payment_failed:card:invoice:{invoice_id}"

    bill.give_card("card", "pm_card_visa")
    bill.client.v1.invoices.pay(invoice_id)
    hooks.settle()
    assert bill.agency("card").billing_attention is None
    assert len(bill.notifications(NotificationKind.PAYMENT_FAILED)) == 1

    # A late copy of the old failure changes nothing: the invoice is paid now.
    assert hooks.post(json.dumps(failed).encode()).status_code == 200
    hooks.settle()
    assert bill.agency("card").billing_attention is None


def test_a_decline_the_billing_worker_already_reported_is_not_emailed_twice(
    hooks: Hooks,
) -> None:
    bill = hooks.bill
    bill.active_agency("twice", seats=1, card="pm_card_chargeCustomerFail")
    hooks.listen()
    bill.api.ok("PUT", "/v1/agencies/twice/seats/base", {"quantity": 2})
    bill.work_until(lambda: bill.in_sync("twice"))

    enqueue.enqueue_invoice(bill.redis, "twice")  # the daily invoice, charged now: declined
    bill.work()
    hooks.settle()

    assert bill.emu.events("invoice.payment_failed")
    failed = [row for row in hooks.rows() if row.type == "invoice.payment_failed"]
    assert [row.status for row in failed] == ["processed"]
    assert bill.agency("twice").billing_attention == "payment_failed"
    [email] = bill.notifications(NotificationKind.PAYMENT_FAILED)
    day = email.payload["cause"].split(":")[1]
    assert email.dedupe_key == f"payment_failed:twice:invoice:{day}:1"  # the worker's own
