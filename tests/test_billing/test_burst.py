"""200 first logins with Auto-Add ON within seconds, over HTTP, with real worker processes.

gunicorn serves the app (its after-commit hook enqueues into the billing
queue of the test's Redis); two `python -m workers.run worker` processes sync
Stripe (the emulator) meanwhile. Stripe must end at the exact purchased
quantity after a handful of coalesced updates, with no 429 anywhere.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from rq.registry import FailedJobRegistry

from tests.conftest import API_TOKEN
from tests.live_server import Call, LiveServer, burst, in_threads, start_gunicorn
from tests.test_billing.conftest import MAX_WAIT_MS, Billing, postgres_only, stop_group

pytestmark = pytest.mark.slow

SEAT_REQUESTS = 200
# Coalesced: the burst lasts a few seconds and the debounce waits at most 1.5 s.
MOST_UPDATES = 12


@pytest.fixture
def server(bill: Billing, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    postgres_only(bill.backend)
    log_path = tmp_path_factory.mktemp("gunicorn") / "billing.log"
    started = start_gunicorn("seatsvc.wsgi:app", bill.env(), log_path, workers=3, threads=8)
    yield started
    started.stop()


def test_a_burst_of_auto_adds_costs_a_handful_of_stripe_updates(
    bill: Billing, server: LiveServer
) -> None:
    bill.active_agency("busy")
    sub_id = bill.agency("busy").stripe_subscription_id
    members = [f"clin{index:03d}" for index in range(SEAT_REQUESTS)]
    joins = [
        Call(
            "POST",
            "/v1/agencies/busy/members",
            {"member_id": m, "email": f"{m}@staff.example", "source": "auto_join"},
        )
        for m in members
    ]
    assert {reply.status for reply in in_threads(server.url, API_TOKEN, joins)} == {201}
    workers = [bill.spawn_worker() for _ in range(2)]
    try:
        started = time.monotonic()
        replies = burst(
            server.url,
            API_TOKEN,
            [Call("POST", f"/v1/agencies/busy/members/{m}/seat-request") for m in members],
        )
        burst_seconds = time.monotonic() - started
        last_answer = time.monotonic()
        assert Counter(reply.status for reply in replies) == {200: SEAT_REQUESTS}
        assert Counter(reply.body["outcome"] for reply in replies) == {"auto_added": SEAT_REQUESTS}

        deadline = time.monotonic() + 60
        while bill.stripe_quantity("busy") != SEAT_REQUESTS or not bill.in_sync("busy"):
            assert time.monotonic() < deadline, "Stripe never reached the purchased quantity"
            time.sleep(0.05)
        converged = time.monotonic() - last_answer
    finally:
        outputs = [stop_group(worker) for worker in workers]

    updates = bill.quantity_updates("busy")
    print(
        f"\n{SEAT_REQUESTS} auto-adds in {burst_seconds:.1f}s -> {len(updates)} Stripe quantity"
        f" updates; Stripe final {converged:.1f}s after the last answer"
    )
    assert bill.stripe_quantity("busy") == SEAT_REQUESTS
    # One update per debounce period (max_wait) while the burst lasts, plus the last.
    most = burst_seconds / (MAX_WAIT_MS / 1000) + 3
    assert 1 <= len(updates) <= min(most, MOST_UPDATES), [u["params"] for u in updates]
    quantities = [int(u["params"]["items"][0]["quantity"]) for u in updates]
    assert quantities == sorted(quantities)  # absolute, growing, never "+1"
    assert quantities[-1] == SEAT_REQUESTS
    statuses = Counter(entry["status"] for entry in bill.emu.requests())
    assert set(statuses) == {200}, statuses
    assert len(bill.emu.store.quantity_updates[str(sub_id)]) == len(updates)
    assert FailedJobRegistry(queue=bill.queue).get_job_ids() == []
    seats = bill.api.seats("busy")
    assert (seats["purchased"], seats["used"], seats["billed"]) == (SEAT_REQUESTS,) * 3
    for output in outputs:
        assert "Traceback" not in output, output[-3000:]
