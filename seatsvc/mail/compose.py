"""What each notification says: facts in, a correct MIME message out. No I/O but templates.

Each kind has `templates/emails/<kind>.txt` and `<kind>.html` (the same facts, as
plain text and as the HTML alternative) and a one-line subject below. Subjects
never name a clinician's address: mail clients and sinks log subjects.

The notification payload each kind reads (`workers.notifier._facts`):
  seat_auto_added       seat_type, seats_added, purchased_after (+ the member's email)
  member_blocked        reason, seat_type, purchased (+ the agency's cap, trial limit, status)
  invite                invite_id, reinvite (+ the invite's expiry; the token is rebuilt)
  payment_failed        all optional: reason (the processor's message), amount_due (minor
                        units) and currency, hosted_invoice_url, next_payment_attempt
                        (unix time or ISO 8601)
  over_capacity         seat_type, purchased (the quantity now in Stripe), used; previous?
  auto_add_cap_reached  seat_type, cap (default: the agency's auto_add_cap); member_id?
  trial_will_end        trial_ends_at (ISO 8601), has_payment_method (+ the trial limit)
  upgrade_confirmed     seats {base, voice}, amount_paid (minor units), currency, invoice_id
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from seatsvc.types import BlockReason, NotificationKind

TEMPLATE_DIR = Path(__file__).parent / "templates" / "emails"

SEAT_LABELS = {"base": "Base", "voice": "Voice"}

SUBJECTS: dict[NotificationKind, str] = {
    NotificationKind.SEAT_AUTO_ADDED: (
        "Auto-Add: {{ seats_added }} {{ seat_label }} seat{{ 's' if seats_added != 1 }} added"
        " to {{ agency_name }} (now {{ purchased_after }})"
    ),
    NotificationKind.MEMBER_BLOCKED: (
        "A clinician is blocked at {{ agency_name }}: {{ reason_short }}"
    ),
    NotificationKind.INVITE: (
        "{{ 'Your new invite' if reinvite else 'You are invited' }} to join {{ agency_name }}"
    ),
    NotificationKind.PAYMENT_FAILED: "Payment failed for {{ agency_name }}'s subscription",
    NotificationKind.OVER_CAPACITY: (
        "{{ agency_name }} has more {{ seat_label }} members than paid seats"
    ),
    NotificationKind.TRIAL_WILL_END: "The trial of {{ agency_name }} ends on {{ trial_ends_on }}",
    NotificationKind.UPGRADE_CONFIRMED: "{{ agency_name }} is now on a paid plan",
}

# Short forms for the blocked email's subject; the body explains each at length.
REASONS_SHORT = {
    BlockReason.NO_CAPACITY: "no {seat} seat free",
    BlockReason.AUTO_ADD_CAP_REACHED: "Auto-Add cap reached",
    BlockReason.TRIAL_LIMIT: "trial seat limit reached",
    BlockReason.SUBSCRIPTION_INACTIVE: "subscription inactive",
}

_bodies = Environment(
    loader=FileSystemLoader(TEMPLATE_DIR),
    autoescape=select_autoescape(["html"], default_for_string=False),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)
_subjects = Environment(autoescape=False, undefined=StrictUndefined)  # noqa: S701  (plain text)


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def render(kind: NotificationKind, facts: dict[str, Any]) -> Rendered:
    """The subject, text and HTML of one email; a missing fact is an error, not a blank."""
    subject = _subjects.from_string(SUBJECTS[kind]).render(facts)
    return Rendered(
        subject=" ".join(subject.split()),
        text=_bodies.get_template(f"{kind.value}.txt").render(facts),
        html=_bodies.get_template(f"{kind.value}.html").render(facts),
    )


def seat_label(seat_type: str | None) -> str:
    return SEAT_LABELS.get(seat_type or "", (seat_type or "").capitalize())


def reason_short(reason: str, seat_type: str | None) -> str:
    try:
        return REASONS_SHORT[BlockReason(reason)].format(seat=seat_label(seat_type))
    except ValueError:
        return reason.replace("_", " ")


def reason_text(
    reason: str,
    seat_type: str | None,
    purchased: int | None,
    auto_add_cap: int | None,
    trial_seat_limit: int,
    billing_status: str,
) -> str:
    """Why a clinician got no seat, in a sentence for the agency's admins."""
    seat = seat_label(seat_type)
    if reason == BlockReason.NO_CAPACITY:
        return (
            f"{seats_in_use(purchased, seat)} and Auto-Add Seats is OFF, so no seat could be given."
        )
    if reason == BlockReason.AUTO_ADD_CAP_REACHED:
        cap = f" ({plural(auto_add_cap, 'seat')})" if auto_add_cap is not None else ""
        return (
            f"{seats_in_use(purchased, seat)} and Auto-Add Seats has"
            f" reached the cap you set{cap}, so no seat was added."
        )
    if reason == BlockReason.TRIAL_LIMIT:
        seats = (
            "1 seat, and it is"
            if trial_seat_limit == 1
            else (f"{trial_seat_limit} seats, and all of them are")
        )
        return (
            f"Your agency is on a free trial that allows {seats} in use;"
            " more seats come with a paid plan."
        )
    if reason == BlockReason.SUBSCRIPTION_INACTIVE:
        return f"Your subscription is not active ({billing_status}), so no new seat can be given."
    return f"No {seat} seat could be given ({reason.replace('_', ' ')})."


def plural(count: int | None, noun: str) -> str:
    """'1 seat', '2 seats' (and '0 seats')."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def seats_in_use(purchased: int | None, seat: str) -> str:
    """'Your only Base seat is in use' / 'All 3 of your Base seats are in use'."""
    if purchased == 1:
        return f"Your only {seat} seat is in use"
    if not purchased:
        return f"Your agency has no {seat} seats"
    return f"All {purchased} of your {seat} seats are in use"


def when(moment: datetime | None) -> str:
    """A moment as people read it, in UTC: 'Tuesday 24 November 2026, 14:05 UTC'."""
    if moment is None:
        return ""
    return f"{moment:%A} {moment.day} {moment:%B %Y, %H:%M} UTC"


def accept_url(base: str, token: str) -> str:
    """INVITE_ACCEPT_URL with `token=...` added to whatever query it already has."""
    parts = urlsplit(base)
    query = [*parse_qsl(parts.query, keep_blank_values=True), ("token", token)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def sender_address(mail_from: str) -> str:
    """The bare address of MAIL_FROM, for the SMTP envelope."""
    address = parseaddr(mail_from)[1]
    if "@" not in address:
        raise ValueError("MAIL_FROM has no email address")
    return address


def message_id(agency_id: str, dedupe_key: str, mail_from: str) -> str:
    """A Message-ID fixed by the notification's cause: a re-send repeats it.

    Receiving systems (and people) can then recognise a duplicate; see
    `workers.notifier` for when one can happen.
    """
    digest = hashlib.sha256(f"{agency_id}\n{dedupe_key}".encode()).hexdigest()[:40]
    domain = sender_address(mail_from).rpartition("@")[2]
    return f"<{digest}@{domain}>"


def build_message(
    *,
    rendered: Rendered,
    mail_from: str,
    to: list[str],
    message_id: str,
    date: datetime,
    kind: NotificationKind,
) -> EmailMessage:
    """multipart/alternative (text, then HTML), UTF-8, with the headers mail systems expect."""
    message = EmailMessage(policy=SMTP)
    message["From"] = mail_from
    message["To"] = [Address(addr_spec=address) for _name, address in getaddresses(to)]
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: machine-sent; out-of-office replies and auto-forwards should stay quiet.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["X-Seatsvc-Kind"] = kind.value
    message.set_content(rendered.text, subtype="plain", charset="utf-8")
    message.add_alternative(rendered.html, subtype="html", charset="utf-8")
    for part in message.iter_parts():
        del part["MIME-Version"]  # belongs on the top-level message only
    return message
