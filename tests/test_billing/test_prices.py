"""The Stripe prices are resolved once per worker process, not once per job.

rq forks a work horse per job: a gateway built lazily inside the horse dies with
it, so every job would pay a `prices.list`. The worker resolves them before it
forks, and each horse inherits them.
"""

from __future__ import annotations

from tests.test_billing.conftest import Billing, finish, kill_group, postgres_only

AGENCIES = [f"priced-{index}" for index in range(3)]


def test_a_forking_worker_resolves_the_prices_once_for_all_its_jobs(bill: Billing) -> None:
    postgres_only(bill.backend)  # a worker process shares the test's database
    for agency_id in AGENCIES:
        bill.api.agency(agency_id, trial=False)  # each enqueues its provisioning job
    assert len(bill.queue.job_ids) == len(AGENCIES)
    bill.emu.clear_requests()

    worker = bill.spawn_worker("--burst")
    try:
        output = finish(worker)
    finally:
        kill_group(worker)

    assert all(bill.agency(agency_id).stripe_subscription_id for agency_id in AGENCIES), output
    assert "Traceback" not in output, output[-3000:]
    assert len(bill.emu.requests("/v1/prices", "GET")) == 1
