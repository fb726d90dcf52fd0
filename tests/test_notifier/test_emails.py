"""Each email, driven through the real API, sent by a real rq worker, read from a real SMTP sink."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import pytest

from seatsvc.runtime import Runtime
from seatsvc.services import outbox
from seatsvc.types import NotificationKind
from tests.helpers import Api
from tests.test_notifier.conftest import Notifier, Sink

ADMIN = "admin@clinic.example"


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    assert part.get_content_charset() == "utf-8"
    return str(part.get_content())


def only_message(sink: Sink) -> EmailMessage:
    assert len(sink.messages) == 1, [m["Subject"] for m in sink.messages]
    message: EmailMessage = sink.messages[0]
    return message


def plain(html: str) -> str:
    """The HTML body's visible text, whitespace folded, entities of interest decoded."""
    text = re.sub(r"<[^>]+>", " ", html).replace("&amp;", "&").replace("&#39;", "'")
    return " ".join(text.split())


def assert_facts(message: EmailMessage, *facts: str) -> None:
    """Every fact is in the text part and in the HTML part."""
    text = " ".join(body(message, "plain").split())
    html = plain(body(message, "html"))
    for fact in facts:
        assert fact in text, (fact, text)
        assert fact in html, (fact, html)


def test_seat_auto_added_email_goes_to_the_admins(
    api: Api, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    notifier, sink = notifier_and_sink
    api.agency(seats=1, auto_add=True)
    for member in ("m1", "m2"):
        api.join(member)
    assert api.seat_request("m1")["outcome"] == "activated"
    assert api.seat_request("m2")["outcome"] == "auto_added"

    notifier.work()

    message = only_message(sink)
    assert sink.received[0].rcpt_tos == (ADMIN,)
    assert message["To"] == ADMIN
    assert message["Subject"] == "Auto-Add: 1 Base seat added to Clinic (now 2)"
    assert_facts(
        message,
        "m2@staff.example",  # which clinician joined
        "Base",
        "2",
        "prorated",
        "remove the member",
        "lower your seat count in the Seats & Billing tab",
    )
    text = " ".join(body(message, "plain").split())
    assert "Base seats on your plan now: 2" in text
    assert "Clinician: m2@staff.example" in text
    [row] = notifier.rows("seat_auto_added")
    assert row.status == "sent" and row.sent_at is not None and row.attempts == 1


BLOCK_CASES = {
    "no_capacity": (
        "no Base seat free",
        "Your only Base seat is in use and Auto-Add Seats is OFF",
    ),
    "auto_add_cap_reached": ("Auto-Add cap reached", "reached the cap you set (1 seat)"),
    "trial_limit": ("trial seat limit reached", "free trial that allows 1 seat, and it is in use"),
    "subscription_inactive": (
        "subscription inactive",
        "Your subscription is not active (canceled)",
    ),
}


def block(api: Api, runtime: Runtime, reason: str) -> None:
    """Make `m2`'s first login end blocked for `reason`."""
    if reason == "no_capacity":
        api.agency(seats=1)
    elif reason == "auto_add_cap_reached":
        api.agency(seats=1, auto_add=True)
        api.ok("PATCH", "/v1/agencies/clinic/settings", {"auto_add_cap": 1})
    elif reason == "trial_limit":
        api.agency(seats=1, auto_add=True, trial=True)
    elif reason == "subscription_inactive":
        api.agency(seats=1)
        from tests.outbox_rows import set_agency

        set_agency(runtime, billing_status="canceled")
    for member in ("m1", "m2"):
        api.join(member)
    if reason != "subscription_inactive":
        assert api.seat_request("m1")["outcome"] == "activated"
    result = api.seat_request("m2")
    assert (result["outcome"], result["reason"]) == ("blocked", reason)


@pytest.mark.parametrize("reason", sorted(BLOCK_CASES))
def test_blocked_email_says_who_why_and_how_to_unblock(
    api: Api, runtime: Runtime, notifier_and_sink: tuple[Notifier, Sink], reason: str
) -> None:
    notifier, sink = notifier_and_sink
    block(api, runtime, reason)

    notifier.work()

    message = only_message(sink)
    assert sink.received[0].rcpt_tos == (ADMIN,)
    short, why = BLOCK_CASES[reason]
    assert message["Subject"] == f"A clinician is blocked at Clinic: {short}"
    assert_facts(
        message,
        "m2@staff.example",
        why,
        UNBLOCK_STEP[reason],
        "Re-invite",
    )
    text = body(message, "plain")
    assert "\n0." not in text  # steps are numbered from 1 (issue #11)


ADD_A_SEAT = "Add a seat in Seats & Billing (or remove an inactive member to free one)"
UNBLOCK_STEP = {
    "no_capacity": ADD_A_SEAT,
    "auto_add_cap_reached": ADD_A_SEAT,
    "trial_limit": "Upgrade to a paid plan in Seats & Billing",
    "subscription_inactive": "Reactivate your subscription in Seats & Billing",
}


def test_invite_email_carries_a_working_one_click_link(
    api: Api, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    notifier, sink = notifier_and_sink
    api.agency(seats=2)
    assert api.invite("m3").status_code == 201

    notifier.work()

    message = only_message(sink)
    assert sink.received[0].rcpt_tos == ("m3@staff.example",)
    assert message["Subject"] == "You are invited to join Clinic"
    text = body(message, "plain")
    links = re.findall(r"http://localhost:3000/invites/accept\?token=([0-9a-f]+\.[0-9a-f]+)", text)
    assert len(links) == 1
    assert f"?token={links[0]}" in body(message, "html")
    assert "expires on" in text and "72 hours" in text and "works once" in text

    accepted = api.ok("POST", "/v1/invites/accept", {"token": links[0]})
    assert accepted["status"] == "active"
    # Single use: the same link does not work twice.
    assert api.call("POST", "/v1/invites/accept", {"token": links[0]}).status_code == 410


def test_reinvite_of_a_blocked_clinician_sends_a_fresh_link(
    api: Api, runtime: Runtime, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    notifier, sink = notifier_and_sink
    block(api, runtime, "no_capacity")
    api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 2})  # step 1: add a seat
    api.ok("POST", "/v1/agencies/clinic/members/m2/reinvite")  # step 2: Re-invite

    notifier.work()

    assert len(sink.messages) == 2
    invite = next(m for m in sink.messages if m["X-Seatsvc-Kind"] == "invite")
    # Their first link (they auto-joined, then were blocked): nothing to "replace" (#11).
    assert invite["Subject"] == "You are invited to join Clinic"
    assert "replaces any earlier" not in body(invite, "plain")
    assert invite["To"] == "m2@staff.example"
    token = re.search(r"\?token=(\S+)", body(invite, "plain"))
    assert token is not None
    assert api.ok("POST", "/v1/invites/accept", {"token": token.group(1)})["status"] == "active"


def test_an_invite_replaced_before_sending_is_skipped_not_sent(
    api: Api, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    notifier, sink = notifier_and_sink
    api.agency(seats=2)
    api.invite("m3")
    api.ok("POST", "/v1/agencies/clinic/members/m3/reinvite")

    notifier.work()

    message = only_message(sink)  # only the link that works
    assert message["Subject"] == "Your new invite to join Clinic"
    assert "replaces any earlier invite link" in body(message, "plain")
    first, second = notifier.rows("invite")
    assert first.status == "skipped" and "replaced" in (first.last_error or "")
    assert second.status == "sent"


LATER_KINDS: dict[NotificationKind, tuple[dict[str, Any], str, tuple[str, ...]]] = {
    NotificationKind.PAYMENT_FAILED: (
        {
            "reason": "Your card was declined.",
            "cause": "sync",
            "amount_due": 12900,
            "currency": "usd",
            "next_payment_attempt": 1_900_000_000,
            "hosted_invoice_url": "https://invoice.example/in_1",
        },
        "Payment failed for Clinic's subscription",
        (
            "129.00 USD",
            "Your card was declined.",
            "update the payment method in Seats & Billing",
            "2030",
        ),
    ),
    NotificationKind.OVER_CAPACITY: (
        {"seat_type": "base", "purchased": 2, "used": 3, "previous": 3},
        "Clinic has more Base members than paid seats",
        ("directly in Stripe", "from 3 to 2", "Seats paid for", "buy 1 more Base seat"),
    ),
    NotificationKind.TRIAL_WILL_END: (
        {"trial_ends_at": "2030-03-14T10:00:00+00:00", "has_payment_method": False},
        "The trial of Clinic ends on Thursday 14 March",
        ("Thursday 14 March 2030, 10:00 UTC", "click Upgrade", "allows 1 seat", "paused"),
    ),
    NotificationKind.UPGRADE_CONFIRMED: (
        {
            "seats": {"base": 3, "voice": 1},
            "amount_paid": 10000,
            "currency": "usd",
            "invoice_id": "in_1",
        },
        "Clinic is now on a paid plan",
        ("3 Base seats", "1 Voice seat", "100.00 USD", "in_1"),
    ),
}


@pytest.mark.parametrize("kind", sorted(LATER_KINDS))
def test_billing_emails_are_ready_for_their_rows(
    api: Api, runtime: Runtime, notifier_and_sink: tuple[Notifier, Sink], kind: NotificationKind
) -> None:
    notifier, sink = notifier_and_sink
    api.agency(seats=1)
    payload, subject, facts = LATER_KINDS[kind]

    def write(session: Any) -> Any:
        outbox.notify(session, kind, f"{kind.value}:test", "clinic", None, payload)
        return session.info.pop("outbox")

    touched = runtime.db.run(write)
    runtime.after_commit(touched)  # as a request's unit of work does
    notifier.work()

    message = only_message(sink)
    assert sink.received[0].rcpt_tos == (ADMIN,)
    assert message["Subject"] == subject
    assert_facts(message, *facts)


def test_payment_failed_email_from_the_billing_workers_row(
    api: Api, runtime: Runtime, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    """The payload seatsvc.billing writes today: only the decline reason and its cause."""
    notifier, sink = notifier_and_sink
    api.agency(seats=1)

    def write(session: Any) -> Any:
        outbox.notify(
            session,
            NotificationKind.PAYMENT_FAILED,
            "payment_failed:clinic:sync",
            "clinic",
            payload={"reason": "Your card has insufficient funds.", "cause": "sync"},
        )
        return session.info.pop("outbox")

    runtime.after_commit(runtime.db.run(write))
    notifier.work()

    message = only_message(sink)
    assert message["Subject"] == "Payment failed for Clinic's subscription"
    assert_facts(message, "Your card has insufficient funds.", "Seats & Billing")
    assert "We will try the payment again" not in body(message, "plain")
