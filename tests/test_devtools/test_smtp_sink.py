"""The SMTP sink answers in constant time however many messages it holds.

aiosmtpd looks over its handler's members at every connection; a member that
parsed every stored message (the `messages` property) made each greeting slower
as mail piled up. The test counts the parses one more session causes.
"""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator
from email.message import EmailMessage

import pytest

from devtools import smtp_sink
from devtools.smtp_sink import MailSink, Received, start

STORED = 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def raw_message(n: int) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "app@sink.example", "admin@sink.example"
    message["Subject"], message["Message-ID"] = f"message {n}", f"<m{n}@sink.example>"
    message.set_content(f"body {n}\n")
    return bytes(message)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per stored message parsed (however the sink gets to parse it)."""
    counted: list[int] = []
    parse = Received.message.fget  # type: ignore[attr-defined]

    def counting(record: Received) -> EmailMessage:
        counted.append(1)
        return parse(record)  # type: ignore[no-any-return]

    monkeypatch.setattr(Received, "message", property(counting))
    return counted


@pytest.fixture
def full_sink() -> Iterator[tuple[MailSink, int]]:
    sink = MailSink()
    sink.received.extend(
        Received("app@sink.example", ("admin@sink.example",), raw_message(n)) for n in range(STORED)
    )
    port = free_port()
    controller = start(sink, "127.0.0.1", port)
    yield sink, port
    controller.stop()


def test_one_more_session_parses_one_message_not_the_store(
    full_sink: tuple[MailSink, int], parses: list[int]
) -> None:
    sink, port = full_sink
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo()
        client.sendmail("app@sink.example", ["admin@sink.example"], raw_message(STORED))
    assert len(sink.received) == STORED + 1
    assert len(parses) <= 1  # the new message's log line; the 1000 stored ones: never
    assert sink.received[-1].message["Subject"] == f"message {STORED}"


def test_hooks_overridden_by_a_subclass_still_answer(parses: list[int]) -> None:
    class Refusing(MailSink):
        async def handle_RCPT(  # type: ignore[no-untyped-def]
            self, server, session, envelope, address, rcpt_options
        ) -> str:
            return "451 4.3.0 Try later"

    port = free_port()
    controller = start(Refusing(), "127.0.0.1", port)
    try:
        with (
            smtplib.SMTP("127.0.0.1", port, timeout=10) as client,
            pytest.raises(smtplib.SMTPRecipientsRefused),
        ):
            client.sendmail("app@sink.example", ["admin@sink.example"], raw_message(0))
    finally:
        controller.stop()
    assert smtp_sink.MailSink is MailSink
