"""The billing worker against the Stripe emulator: provisioning, linking, syncing.

Requests go through the app (after-commit enqueue into the real billing
queue); jobs run in a real rq worker; Stripe is the emulator over HTTP.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from seatsvc import enqueue
from seatsvc.billing import sync
from seatsvc.models import utcnow
from tests.test_billing.conftest import Billing
from workers import billing, context


def test_provisioning_creates_a_customer_and_a_subscription_with_a_base_item(
    bill: Billing,
) -> None:
    bill.api.agency("north", seats=3, voice=2, trial=False)
    bill.work_until(lambda: bill.outbox("north").status == "done")

    agency = bill.agency("north")
    assert agency.stripe_customer_id and agency.stripe_subscription_id
    customer = bill.emu.get(agency.stripe_customer_id)
    assert customer is not None
    assert customer["metadata"] == {"agency_id": "north"}
    assert customer["email"] == "admin@clinic.example"
    sub = bill.subscription("north")
    assert sub["customer"] == agency.stripe_customer_id
    assert sub["metadata"] == {"agency_id": "north"}
    assert bill.stripe_quantity("north", "base") == 3
    assert bill.stripe_quantity("north", "voice") == 2
    pools = bill.pools("north")
    assert (pools["base"].billed, pools["voice"].billed) == (3, 2)
    assert pools["base"].stripe_item_id == next(
        item["id"] for item in sub["items"]["data"] if item["quantity"] == 3
    )
    # One customer, one subscription, however often the job runs.
    enqueue.enqueue_sync(bill.redis, "north")
    bill.work()
    assert len(bill.emu.objects("customer")) == 1
    assert len(bill.emu.objects("subscription")) == 1
    seats = bill.api.seats("north")
    assert seats["billed"] == 3
    assert seats["sync"] == "in_sync"


def test_provisioning_with_no_seats_still_has_a_base_item(bill: Billing) -> None:
    bill.api.agency("bare", trial=False)
    bill.work_until(lambda: bill.outbox("bare").status == "done")

    items = bill.subscription("bare")["items"]["data"]
    prices = context.gateway(bill.runtime).prices
    assert [(item["price"]["id"], item["quantity"]) for item in items] == [(prices["base"], 0)]
    assert bill.agency("bare").billing_status == "active"  # a $0 first invoice is paid


def test_a_trial_agency_is_trialing_with_one_base_seat_for_14_days(bill: Billing) -> None:
    bill.api.agency("trial", trial=True)
    bill.work_until(lambda: bill.outbox("trial").status == "done")

    sub = bill.subscription("trial")
    assert sub["status"] == "trialing"
    assert bill.stripe_quantity("trial", "base") == 1
    assert bill.stripe_quantity("trial", "voice") == 0
    trial_end = datetime.fromtimestamp(sub["trial_end"], UTC)
    assert abs(trial_end - (datetime.now(UTC) + timedelta(days=14))) < timedelta(hours=1)
    view = bill.api.ok("GET", "/v1/agencies/trial")
    assert view["billing_status"] == "trialing"
    assert view["seats"]["base"] == {**view["seats"]["base"], "purchased": 1, "billed": 1}


def test_linking_reads_purchased_and_billed_from_stripe(bill: Billing) -> None:
    client = bill.client
    prices = context.gateway(bill.runtime).prices
    customer = client.v1.customers.create(
        {"email": "owner@linked.example", "payment_method": "pm_card_visa",
         "invoice_settings": {"default_payment_method": "pm_card_visa"}}
    )  # fmt: skip
    sub = client.v1.subscriptions.create(
        {
            "customer": customer.id,
            "items": [
                {"price": prices["base"], "quantity": 7},
                {"price": prices["voice"], "quantity": 2},
            ],
        }
    )
    assert sub.status == "active"
    bill.emu.clear_requests()

    body = {
        "name": "Linked",
        "admin_emails": ["admin@linked.example"],
        "stripe_customer_id": customer.id,
        "stripe_subscription_id": sub.id,
    }
    bill.api.ok("PUT", "/v1/agencies/linked", body, status=201)
    bill.work_until(lambda: bill.outbox("linked").status == "done")

    view = bill.api.ok("GET", "/v1/agencies/linked")
    assert view["billing_status"] == "active"
    assert {seat: (v["purchased"], v["billed"]) for seat, v in view["seats"].items()} == {
        "base": (7, 7),
        "voice": (2, 2),
    }
    # Linking reads; it never writes to Stripe (no new customer, no quantity change).
    assert [e for e in bill.emu.requests() if e["method"] == "POST"] == []
    assert len(bill.emu.objects("subscription")) == 1


def test_manual_reduction_lowers_stripe_with_a_credit_line(bill: Billing) -> None:
    bill.active_agency("shrink", seats=5)
    customer_id = bill.agency("shrink").stripe_customer_id
    assert customer_id
    before = {line["id"] for line in bill.pending_lines(customer_id)}

    bill.api.ok("PUT", "/v1/agencies/shrink/seats/base", {"quantity": 3})
    bill.work_until(lambda: bill.in_sync("shrink"))

    assert bill.stripe_quantity("shrink") == 3
    (update,) = bill.quantity_updates("shrink")
    assert update["params"]["proration_behavior"] == "create_prorations"
    new_lines = [line for line in bill.pending_lines(customer_id) if line["id"] not in before]
    credits = [line for line in new_lines if line["amount"] < 0]
    charges = [line for line in new_lines if line["amount"] > 0]
    assert len(credits) == 1  # "Unused time on 5 x ..."
    assert len(charges) == 1  # "Remaining time on 3 x ..."
    assert sum(line["amount"] for line in new_lines) < 0  # a net credit
    assert bill.api.seats("shrink")["billed"] == 3


def test_removing_a_member_never_calls_stripe(bill: Billing) -> None:
    bill.active_agency("keep", seats=2)
    bill.join_and_login(["amy", "bob"], "keep")
    bill.work_until(lambda: bill.in_sync("keep"))
    bill.emu.clear_requests()
    version = bill.outbox("keep").desired_version

    bill.api.ok("DELETE", "/v1/agencies/keep/members/amy")
    bill.work()
    billing.requeue_pending_syncs(0)
    bill.work()

    assert bill.emu.requests() == []
    assert bill.outbox("keep").desired_version == version
    seats = bill.api.seats("keep")
    assert (seats["purchased"], seats["used"], seats["billed"]) == (2, 1, 2)


def test_every_stripe_write_carries_an_idempotency_key(bill: Billing) -> None:
    bill.api.agency("keys", trial=False)
    bill.work_until(lambda: bill.outbox("keys").status == "done")
    bill.give_card("keys")
    bill.runtime.config = bill.runtime.config.with_overrides(billing_invoice_mode="immediate")
    bill.api.ok("PATCH", "/v1/agencies/keys/settings", {"auto_add_seats": True})
    bill.join_and_login(["ann", "ben"], "keys")
    bill.api.ok("PUT", "/v1/agencies/keys/seats/voice", {"quantity": 1})
    bill.work_until(lambda: bill.in_sync("keys") and not bill.outbox("keys").invoice_needed)

    # Writes made by the service: everything but the test's own card set-up.
    writes = [
        e
        for e in bill.emu.requests(method="POST")
        if "/payment_methods/" not in e["path"] and not e["path"].startswith("/v1/customers/")
    ]
    paths = {e["path"].rsplit("/", 1)[0] if e["path"].count("/") > 2 else e["path"]
             for e in writes}  # fmt: skip
    assert {"/v1/customers", "/v1/subscriptions", "/v1/invoices"} <= paths
    assert [e for e in writes if not e["idempotency_key"]] == []
    assert all(e["idempotency_key"].startswith("seatsvc:keys:") for e in writes)
    # A quantity update's key names the state it sets: a replay sets the same state.
    updates = bill.quantity_updates("keys")
    assert updates
    for update in updates:
        base = next(i["quantity"] for i in update["params"]["items"])
        assert f"base{base}" in update["idempotency_key"]


def test_changes_during_a_stripe_call_start_a_new_debounce(bill: Billing) -> None:
    """Under a steady stream of seat changes: one update per max_wait, not back to back."""
    bill.active_agency("steady")
    bill.api.join("amy", "steady")
    bill.api.join("bob", "steady")
    bill.api.seat_request("amy", "steady")
    plan = bill.runtime.transaction(lambda s: sync.plan_sync(s, "steady"))
    assert plan is not None
    assert plan.first_pending_at is not None
    sub_id = plan.subscription_id
    assert sub_id
    item_ids = bill.runtime.transaction(lambda s: sync.item_ids(s, "steady"))
    snapshot = context.gateway(bill.runtime).set_quantities(
        sub_id, item_ids, plan.purchased, "create_prorations", plan.intent
    )
    bill.api.seat_request("bob", "steady")  # arrives while the call is out
    now = utcnow()
    in_sync = bill.runtime.transaction(
        lambda s: sync.record_synced(s, plan, snapshot, now, sent_update=True)
    )

    assert not in_sync
    row = bill.outbox("steady")
    assert row.status == "pending"
    assert row.first_pending_at == now  # not the first change's time: a fresh debounce


def test_an_agency_that_bought_seats_before_it_had_a_card_can_still_change_them(
    bill: Billing,
) -> None:
    """A paid subscription is provisioned empty and its seats follow as a prorated update,
    so it never sits `incomplete` (which refuses every later quantity change)."""
    bill.api.agency("early", seats=2, trial=False)
    bill.work_until(lambda: bill.agency("early").stripe_subscription_id is not None)
    bill.give_card("early")
    bill.api.ok("PUT", "/v1/agencies/early/seats/base", {"quantity": 3})
    bill.work()
    bill.work()

    assert bill.stripe_quantity("early") == 3
    assert bill.in_sync("early")
