"""`flask stripe reconcile` and `flask stripe events reprocess`, as ops run them."""

from __future__ import annotations

import json

import pytest

from tests.test_billing.conftest import Billing
from tests.test_webhooks.conftest import Hooks

pytestmark = pytest.mark.slow


def base_item(bill: Billing, agency_id: str) -> str:
    item = bill.pools(agency_id)["base"].stripe_item_id
    assert item
    return item


def test_flask_stripe_reconcile_one_agency_and_all(hooks: Hooks) -> None:
    bill = hooks.bill
    bill.active_agency("one", seats=1)
    bill.active_agency("two", seats=1)
    hooks.listen(enabled=False)
    bill.emu.dashboard_set_quantity(base_item(bill, "one"), 3)
    bill.emu.dashboard_set_quantity(base_item(bill, "two"), 4)

    result = bill.flask("stripe", "reconcile", "one")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["adopted"] == {"one": {"base": 3}}
    assert bill.pools("two")["base"].purchased == 1  # only the named agency

    result = bill.flask("stripe", "reconcile", "--all")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["adopted"] == {"two": {"base": 4}}
    assert report["in_agreement"] == 1
    assert bill.pools("two")["base"].purchased == 4

    assert bill.flask("stripe", "reconcile").returncode != 0  # AGENCY or --all


def test_flask_stripe_events_reprocess_is_safe_to_repeat(hooks: Hooks) -> None:
    bill = hooks.bill
    bill.active_agency("again", seats=2)
    hooks.listen()
    bill.emu.fail_next(500, count=1, path_prefix="/v1/subscriptions/", method="GET")
    bill.emu.dashboard_set_quantity(base_item(bill, "again"), 5)
    assert bill.emu.wait_for_webhooks()
    bill.work()  # the handler's re-fetch fails: the row says so, rq will retry later
    [failed] = [row for row in hooks.rows() if row.status == "failed"]
    assert "500" in (failed.last_error or "")
    assert bill.pools("again")["base"].purchased == 2

    result = bill.flask("stripe", "events", "reprocess", "--failed")
    assert result.returncode == 0, result.stderr
    assert f"{failed.id}\tprocessed" in result.stdout
    assert bill.pools("again")["base"].purchased == 5
    assert hooks.row(failed.id).status == "processed"

    for args in (("--id", failed.id), ("--type", "customer.subscription.updated")):
        result = bill.flask("stripe", "events", "reprocess", *args)
        assert result.returncode == 0, result.stderr
    assert len(hooks.ledger("again", "external_change")) == 1  # repeats changed nothing
    assert bill.pools("again")["base"].purchased == 5

    missing = bill.flask("stripe", "events", "reprocess", "--id", "evt_nobody")
    assert missing.returncode == 1
    assert "evt_nobody\tnot stored" in missing.stderr
