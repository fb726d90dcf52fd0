"""The periodic side: the scheduler runs the reconcile sweep and the lost-event sweep."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from seatsvc import enqueue
from seatsvc.models import StripeEvent, utcnow
from seatsvc.runtime import Runtime
from seatsvc.types import StripeEventStatus
from tests.test_webhooks.conftest import Hooks
from webhooks import events
from workers import reconcile, scheduler, stripe_events


def test_the_scheduler_runs_the_reconcile_and_the_event_sweep(runtime: Runtime) -> None:
    jobs = {job.name: job for job in scheduler.build_scheduler(runtime).get_jobs()}
    sweep = jobs["stripe-reconcile"]
    assert (sweep.func, sweep.queue_name) == (reconcile.reconcile_all, "billing")
    assert sweep.interval == reconcile.RECONCILE_SECONDS
    assert sweep.job_options["job_timeout"] == enqueue.RECONCILE_JOB_TIMEOUT
    lost = jobs["stripe-event-requeue"]
    assert (lost.func, lost.queue_name, lost.interval) == (
        stripe_events.requeue_unhandled_events, "billing", runtime.config.requeue_seconds
    )  # fmt: skip


def test_an_event_whose_enqueue_was_lost_is_enqueued_by_the_sweep(hooks: Hooks) -> None:
    bill = hooks.bill
    event = {
        "id": "evt_lost",
        "object": "event",
        "created": int(time.time()),
        "type": "customer.subscription.updated",
        "data": {"object": {"id": "sub_x", "object": "subscription", "customer": "cus_x"}},
    }
    with bill.runtime.db.session() as session, session.begin():
        assert events.insert_event(
            session, json.loads(json.dumps(event)), StripeEventStatus.RECEIVED
        )
        assert not events.insert_event(session, event, StripeEventStatus.RECEIVED)  # once
        row = session.get(StripeEvent, "evt_lost")
        assert row is not None
        row.received_at = utcnow() - timedelta(minutes=5)
    assert bill.queue.count == 0  # as if Redis had been down when it arrived

    assert stripe_events.requeue_unhandled_events(60) == 1
    assert bill.queue.job_ids == ["stripe-event-evt_5flost"]
    bill.work()
    assert hooks.row("evt_lost").status == "ignored"  # handled (a customer we do not know)
    assert stripe_events.requeue_unhandled_events(60) == 0
