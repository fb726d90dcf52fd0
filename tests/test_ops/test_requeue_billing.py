"""A billing sync that Stripe refused, requeued from the dashboard: Stripe is updated once."""

from __future__ import annotations

from rq.registry import FailedJobRegistry

from seatsvc import enqueue
from seatsvc.app import create_app
from seatsvc.runtime import Runtime
from tests.test_billing.conftest import (  # noqa: F401  (fixtures)
    Billing,
    bill,
    config,
    emu,
    emulator,
    redis_conn,
    redis_url,
)
from tests.test_ops.conftest import basic, ops_runtime


def test_a_refused_sync_requeued_from_the_dashboard_updates_stripe_once(
    bill: Billing,  # noqa: F811
    runtime: Runtime,
) -> None:
    bill.active_agency("requeued")
    sub_path = f"/v1/subscriptions/{bill.agency('requeued').stripe_subscription_id}"
    bill.emu.fail_next(400, count=1, path_prefix=sub_path, method="POST")
    (outcome,) = bill.join_and_login(["amy"], "requeued")
    assert outcome["outcome"] == "auto_added"
    bill.work()

    job_id = f"billing-sync-{enqueue.rq_safe('requeued')}"
    failed = FailedJobRegistry(queue=bill.queue)
    assert failed.get_job_ids() == [job_id]
    assert bill.api.seats("requeued")["sync"] == "failed"
    assert bill.quantity_updates("requeued") == []

    ops = create_app(runtime=ops_runtime(runtime)).test_client()
    listed = ops.get("/ops/rq/0/data/jobs/billing/failed/8/asc/1.json", headers=basic())
    assert [job["id"] for job in listed.get_json()["jobs"]] == [job_id]
    refused = ops.post(f"/ops/rq/job/{job_id}/requeue", headers=basic())  # no Origin: 403
    assert refused.status_code == 403
    assert failed.get_job_ids() == [job_id]
    requeued = ops.post(
        f"/ops/rq/job/{job_id}/requeue", headers={**basic(), "Sec-Fetch-Site": "same-origin"}
    )
    assert requeued.status_code == 200

    bill.work_until(lambda: bill.in_sync("requeued"))
    assert failed.get_job_ids() == []
    assert bill.api.seats("requeued")["sync"] == "in_sync"
    assert bill.stripe_quantity("requeued") == 1
    assert len(bill.quantity_updates("requeued")) == 1
    # Requeueing it again (a double click) converges without another update.
    enqueue.enqueue_sync(bill.redis, "requeued")
    bill.work()
    assert len(bill.quantity_updates("requeued")) == 1
