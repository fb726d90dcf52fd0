"""The message itself: MIME structure, UTF-8 headers, Message-ID; SMTP_URL parsing; redaction."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from seatsvc.mail import compose as emails
from seatsvc.mail.smtp import SmtpSettings
from seatsvc.redaction import redact
from seatsvc.types import NotificationKind
from tests.helpers import Api
from tests.test_notifier.conftest import Notifier, RefusingSink, Sink

FACTS = {
    "agency_name": "Clínica São João & Söhne <Ltd>",
    "audience": "admin",
    "seat_label": "Voice",
    "member_email": "zoë@staff.example",
    "seats_added": 1,
    "purchased_after": 7,
}


def build(mail_from: str = "Séat Sërvice <no-reply@seatsvc.example>") -> bytes:
    message = emails.build_message(
        rendered=emails.render(NotificationKind.SEAT_AUTO_ADDED, FACTS),
        mail_from=mail_from,
        to=["admin@clinic.example", "Ops <ops@clinic.example>"],
        message_id=emails.message_id("clinic", "auto_added:m2:v3", mail_from),
        date=datetime(2026, 11, 24, 14, 5, tzinfo=UTC),
        kind=NotificationKind.SEAT_AUTO_ADDED,
    )
    return message.as_bytes()


def test_the_message_is_multipart_alternative_utf8_with_proper_headers() -> None:
    raw = build()
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii(), "headers must be RFC 2047-encoded, not raw UTF-8"
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout

    parsed = message_from_bytes(raw, policy=policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    parts = [part.get_content_type() for part in parsed.iter_parts()]
    assert parts == ["text/plain", "text/html"]  # the preferred (richer) part last
    assert all(part.get_content_charset() == "utf-8" for part in parsed.iter_parts())
    assert parsed["From"] == "Séat Sërvice <no-reply@seatsvc.example>"
    assert parsed["To"] == "admin@clinic.example, ops@clinic.example"
    assert (
        parsed["Subject"]
        == "Auto-Add: 1 Voice seat added to Clínica São João & Söhne <Ltd> (now 7)"
    )
    assert parsed["Date"] == "Tue, 24 Nov 2026 14:05:00 +0000"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed["MIME-Version"] == "1.0"
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Clínica São João & Söhne <Ltd>" in text and "zoë@staff.example" in text
    assert "Clínica São João &amp; Söhne &lt;Ltd&gt;" in html  # escaped in HTML only
    assert "<Ltd>" not in html


def test_the_message_id_is_fixed_by_the_cause() -> None:
    first, again = (message_from_bytes(build(), policy=policy.default) for _ in range(2))
    assert first["Message-ID"] == again["Message-ID"]
    assert first["Message-ID"].startswith("<") and first["Message-ID"].endswith("@seatsvc.example>")
    other = emails.message_id("clinic", "auto_added:m2:v5", "x <no-reply@seatsvc.example>")
    assert other != first["Message-ID"]


def test_a_sent_email_keeps_its_message_id_and_reaches_every_admin(
    api: Api, notifier_and_sink: tuple[Notifier, Sink]
) -> None:
    notifier, sink = notifier_and_sink
    api.ok(
        "PUT",
        "/v1/agencies/clinic",
        {"name": "Clínica Ñandú", "admin_emails": ["a@clinic.example", "b@clinic.example"]},
        status=201,
    )
    api.ok("POST", "/v1/agencies/clinic/baa", {})
    api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 1})
    api.ok("PATCH", "/v1/agencies/clinic/settings", {"auto_add_seats": True})
    for member in ("m1", "m2"):
        api.join(member)
        api.seat_request(member)

    notifier.work()

    [received] = sink.received
    assert sorted(received.rcpt_tos) == ["a@clinic.example", "b@clinic.example"]
    message = received.message
    [row] = notifier.rows()
    assert message["Message-ID"] == emails.message_id(
        "clinic", row.dedupe_key, notifier.runtime.config.mail_from
    )
    assert "Clínica Ñandú" in message["Subject"]


def test_one_admin_refused_the_others_still_get_it_and_the_refusal_is_noted(
    api: Api, notifier_factory: Callable[..., tuple[Notifier, Sink]]
) -> None:
    notifier, sink = notifier_factory(
        RefusingSink("550 5.1.1 <{address}>: no such user", refusals=1)
    )
    api.ok(
        "PUT",
        "/v1/agencies/clinic",
        {"name": "Clinic", "admin_emails": ["gone@clinic.example", "b@clinic.example"]},
        status=201,
    )
    api.ok("POST", "/v1/agencies/clinic/baa", {})
    api.ok("PUT", "/v1/agencies/clinic/seats/base", {"quantity": 1})
    api.join("m1")
    api.seat_request("m1")
    api.join("m2")
    api.seat_request("m2")  # blocked: the admins are told

    notifier.work()

    [received] = sink.received
    assert received.rcpt_tos == ("b@clinic.example",)
    [row] = notifier.rows()
    assert row.status == "sent"
    assert "1 of 2 recipients refused: 550" in (row.last_error or "")
    assert "gone@clinic.example" not in (row.last_error or "")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://127.0.0.1:8025", SmtpSettings("127.0.0.1", 8025)),
        ("smtp://mail.example", SmtpSettings("mail.example", 25)),
        (
            "smtp://user%40x.example:p%3Ass@mail.example:587?starttls=1&timeout=5",
            SmtpSettings(
                "mail.example",
                587,
                starttls=True,
                username="user@x.example",
                password="p:ss",
                timeout=5.0,
            ),
        ),
        (
            "smtps://u:p@mail.example",
            SmtpSettings("mail.example", 465, implicit_tls=True, username="u", password="p"),
        ),
    ],
)
def test_smtp_url_forms(url: str, expected: SmtpSettings) -> None:
    assert SmtpSettings.from_url(url) == expected


@pytest.mark.parametrize("url", ["http://mail.example", "smtp://", "mail.example:25"])
def test_a_bad_smtp_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError):
        SmtpSettings.from_url(url)


def test_the_password_is_not_in_the_settings_repr() -> None:
    assert "s3cret" not in repr(SmtpSettings.from_url("smtp://u:s3cret@mail.example"))


def test_redact_removes_addresses_in_any_wrapping() -> None:
    said = "550 5.1.1 <bob.smith+x@staff.example>: unknown; also zoë@ex.example, (a@b.c)"
    cleaned = redact(said)
    assert "@" not in cleaned
    assert cleaned.startswith("550 5.1.1 [email]: unknown")


def test_accept_url_keeps_an_existing_query() -> None:
    assert emails.accept_url("https://app.example/accept?lang=fr", "abc.def") == (
        "https://app.example/accept?lang=fr&token=abc.def"
    )
