"""Reconciliation: with webhook delivery switched off, the sweep restores agreement.

It lists subscriptions 100 at a time (not one call per agency), adopts
dashboard changes by the same rules as the webhooks, hands pending local
changes to the billing sync, and recovers the events it never received.
"""

from __future__ import annotations

from typing import Any

import pytest
from rq.job import Job
from sqlalchemy import update

from seatsvc import enqueue
from seatsvc.billing.reconcile import compare_with_stripe
from seatsvc.models import BillingOutbox, StripeEvent, utcnow
from seatsvc.types import NotificationKind
from tests.test_billing.conftest import Billing
from tests.test_webhooks.conftest import Hooks
from workers import context, reconcile


def base_item(bill: Billing, agency_id: str) -> str:
    item = bill.pools(agency_id)["base"].stripe_item_id
    assert item
    return item


def run_reconcile(bill: Billing) -> dict[str, Any]:
    """As the cron does: the job on the billing queue, run by a real worker."""
    job = bill.queue.enqueue(reconcile.reconcile_all, result_ttl=600)
    bill.work()
    job = Job.fetch(job.id, connection=bill.redis, serializer=enqueue.SERIALIZER)
    assert job.get_status() == "finished", job.exc_info
    result: dict[str, Any] = job.return_value()
    return result


def test_with_webhooks_off_the_reconcile_job_restores_agreement(hooks: Hooks) -> None:
    bill = hooks.bill
    bill.active_agency("up", seats=2)
    bill.active_agency("down", seats=3, auto_add=False)
    bill.join_and_login(["d1", "d2", "d3"], "down")
    bill.active_agency("local", seats=1)
    bill.active_agency("calm", seats=2)
    hooks.listen(enabled=False)  # every event from here on is lost

    bill.emu.dashboard_set_quantity(base_item(bill, "up"), 6)
    bill.emu.dashboard_set_quantity(base_item(bill, "down"), 1)
    lost = [e["id"] for e in bill.emu.events("customer.subscription.updated")[-2:]]
    bill.api.ok("PUT", "/v1/agencies/local/seats/base", {"quantity": 3})
    bill.queue.empty()  # ... and the sync job of that local change is lost too
    bill.emu.clear_requests()

    report = run_reconcile(bill)
    hooks.settle()
    bill.work_until(lambda: bill.in_sync("local"))

    assert (bill.pools("up")["base"].purchased, bill.pools("up")["base"].billed) == (6, 6)
    assert bill.pools("down")["base"].purchased == 1
    assert bill.agency("down").billing_attention == "over_capacity"
    assert len(bill.notifications(NotificationKind.OVER_CAPACITY)) == 1
    assert bill.stripe_quantity("local") == 3
    assert bill.pools("calm")["base"].purchased == 2
    for agency_id, quantity in (("up", 6), ("down", 1)):
        [change] = hooks.ledger(agency_id, "external_change")
        assert (change.purchased_after, change.actor) == (quantity, "reconcile")

    assert report["agencies"] == 4
    assert report["adopted"] == {"up": {"base": 6}, "down": {"base": 1}}
    assert report["syncs_enqueued"] == 1
    assert report["in_agreement"] == 1
    assert report["missing_in_stripe"] == []
    # The lost events were recovered from Stripe's event list and handled (changing nothing).
    assert report["events_recovered"] >= 2
    recovered = {row.id: row.status for row in hooks.rows()}
    assert all(recovered.get(event_id) == "processed" for event_id in lost), recovered

    # One page of subscriptions for all four agencies; a retrieve only for the two that differed.
    listed = [
        r for r in bill.emu.requests("/v1/subscriptions", "GET") if r["path"] == "/v1/subscriptions"
    ]
    assert len(listed) == 1
    assert (listed[0]["params"]["status"], listed[0]["params"]["limit"]) == ("all", "100")
    events_listed = bill.emu.requests("/v1/events", "GET")
    assert events_listed and "created" in events_listed[0]["params"]

    second = run_reconcile(bill)  # everything agrees now: nothing to do
    assert (second["in_agreement"], second["adopted"], second["syncs_enqueued"]) == (4, {}, 0)


def test_the_list_is_paginated(hooks: Hooks, monkeypatch: pytest.MonkeyPatch) -> None:
    bill = hooks.bill
    for index in range(3):
        bill.active_agency(f"page-{index}", seats=1)
    monkeypatch.setattr("seatsvc.billing.gateway.PAGE", 2)
    bill.emu.clear_requests()
    report = compare_with_stripe(bill.runtime, _gateway(bill))
    assert report.in_agreement == 3
    listed = bill.emu.requests("/v1/subscriptions", "GET")
    assert [r["params"].get("starting_after") is not None for r in listed] == [False, True]
    assert report.stripe_calls == 2


def test_post_reconcile_enqueues_a_job_that_heals_the_agency(hooks: Hooks) -> None:
    bill = hooks.bill
    bill.active_agency("ops", seats=2)
    hooks.listen(enabled=False)
    bill.emu.dashboard_set_quantity(base_item(bill, "ops"), 4)

    response = bill.api.call("POST", "/v1/agencies/ops/reconcile")
    assert response.status_code == 202
    assert "stripe-reconcile-ops" in bill.queue.job_ids
    bill.work()
    assert bill.pools("ops")["base"].purchased == 4
    assert bill.outbox("ops").reconcile_requested_at is None


def test_a_reconcile_request_made_during_the_sweep_is_kept(hooks: Hooks) -> None:
    """Only requests made before the comparison began are answered by it."""
    bill = hooks.bill
    bill.active_agency("late", seats=1)
    bill.runtime.transaction(
        lambda s: s.execute(
            update(BillingOutbox)
            .where(BillingOutbox.agency_id == "late")
            .values(reconcile_requested_at=utcnow().replace(year=2999))
        )
    )
    compare_with_stripe(bill.runtime, _gateway(bill), ["late"])
    assert bill.outbox("late").reconcile_requested_at is not None


def test_events_for_unknown_customers_are_recorded_and_ignored(hooks: Hooks) -> None:
    bill = hooks.bill
    hooks.listen()
    customer = bill.client.v1.customers.create({"name": "Not ours"})
    bill.client.v1.subscriptions.create(
        {"customer": customer.id, "items": [{"price": _gateway(bill).prices["base"]}]}
    )
    hooks.settle()
    created = [row for row in hooks.rows() if row.type == "customer.subscription.created"]
    assert [(row.status, row.last_error) for row in created] == [
        ("ignored", "unknown customer and subscription")
    ]
    with bill.runtime.db.session() as session:
        assert session.get(StripeEvent, created[0].id) is not None


def _gateway(bill: Billing) -> Any:
    return context.gateway(bill.runtime)
