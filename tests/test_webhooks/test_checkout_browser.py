"""A newcomer clicks through the emulator's Checkout page in headless Chromium.

The app's `POST …/upgrade` creates the setup-mode Checkout Session; the browser opens
its URL (the emulator's own page over HTTP), "saves" Stripe's Visa test card, and is
sent back to the return URL; Stripe's events then finish the upgrade through the
webhook and the workers. Skipped without chromium, except under CI=true.
"""

from __future__ import annotations

from typing import Any

from tests.test_ops.test_dashboard_browser import WAIT, browser, wait_for
from tests.test_webhooks.conftest import Hooks

__all__ = ["browser"]  # the fixture, reused


def test_upgrade_through_the_emulators_checkout_page_in_a_browser(
    hooks: Hooks, browser: Any
) -> None:
    from selenium.webdriver.common.by import By

    bill, api = hooks.bill, hooks.bill.api
    hooks.listen()
    api.agency("clicky", trial=True)
    bill.work_until(lambda: bill.agency("clicky").billing_status == "trialing")
    back = f"{hooks.url}/healthz"  # a real page of the app to land on
    answer = api.ok(
        "POST",
        "/v1/agencies/clicky/upgrade",
        {"seats": {"base": 2, "voice": 1}, "return_url": back},
        status=202,
    )

    browser.get(answer["checkout_url"])
    assert "Add payment details" in browser.title
    number = browser.find_element(By.ID, "card_number")
    number.clear()
    number.send_keys("4000 0000 0000 0002")  # declined: the page says so, nothing saved
    browser.find_element(By.ID, "submit").click()
    wait_for(lambda: browser.find_element(By.CSS_SELECTOR, ".error"), "the decline message")
    assert "declined" in browser.find_element(By.CSS_SELECTOR, ".error").text
    number = browser.find_element(By.ID, "card_number")
    number.clear()
    number.send_keys("4242 4242 4242 4242")
    browser.find_element(By.ID, "submit").click()
    wait_for(lambda: browser.current_url.startswith(back), "the redirect to return_url", WAIT)

    hooks.settle()
    bill.work_until(
        lambda: bill.in_sync("clicky") and bill.agency("clicky").billing_status == "active"
    )
    hooks.settle()
    agency = api.ok("GET", "/v1/agencies/clicky")
    assert agency["payment_method"] == {
        "brand": "visa",
        "last4": "4242",
        "exp_month": 12,
        "exp_year": 2034,
    }
    assert (agency["seats"]["base"]["billed"], agency["seats"]["voice"]["billed"]) == (2, 1)
    customer = bill.agency("clicky").stripe_customer_id
    paid = [
        i
        for i in bill.emu.objects("invoice")
        if i["customer"] == customer and i["amount_due"] > 0 and i["status"] == "paid"
    ]
    assert len(paid) == 1
    assert len(bill.notifications("upgrade_confirmed")) == 1
