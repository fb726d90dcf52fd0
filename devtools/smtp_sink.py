"""A local SMTP sink (aiosmtpd) that keeps every message it receives, for developers and tests.

`python -m workers.smtp_sink [--host 127.0.0.1] [--port 8025] [--dir instance/mail]`
stores each message as `<dir>/<UTC time>-<n>.eml` (open it in any mail client,
or read it as text) and logs one line per message, without any address.
Point the notifier at it with `SMTP_URL=smtp://127.0.0.1:8025` (the default).
"""

from __future__ import annotations

import argparse
import email
import email.policy
import itertools
import logging
import signal
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from seatsvc.redaction import redact

log = logging.getLogger("workers.smtp_sink")

DEFAULT_DIR = Path("instance") / "mail"


@dataclass(frozen=True)
class Received:
    """One message as the sink got it: the envelope and the raw bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    path: Path | None = None

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class MailSink:
    """aiosmtpd handler: accept everything, keep it in memory and (optionally) on disk.

    Subclasses may refuse commands (tests do) by overriding `handle_RCPT` or
    `handle_DATA` and returning an SMTP reply such as "451 4.3.0 Try later".
    """

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._counter = itertools.count(1)
        if directory is not None:
            directory.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data: bytes = envelope.original_content or envelope.content
        path = self._store(data)
        record = Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), data, path)
        with self._lock:
            self.received.append(record)
        message = record.message
        log.info(
            "received %s, %d recipient(s), %d bytes, subject %r%s",
            message.get("Message-ID", "(no Message-ID)"),
            len(record.rcpt_tos),
            len(data),
            redact(str(message.get("Subject", ""))),
            f" -> {path}" if path else "",
        )
        return "250 2.0.0 Message accepted"

    def _store(self, data: bytes) -> Path | None:
        if self.directory is None:
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{next(self._counter)}.eml"
        path.write_bytes(data)
        return path

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return [record.message for record in self.received]


class _Hooks:
    """What aiosmtpd sees of a sink: its `handle_*` hooks (a subclass's included), nothing else.

    aiosmtpd runs `inspect.getmembers` over its handler at every connection, which
    evaluates every property: handed the sink itself, each greeting re-parsed
    every stored message (`messages`) and slowed down as mail piled up.
    """

    def __init__(self, sink: MailSink) -> None:
        for name in dir(type(sink)):  # the class: no property is evaluated
            if name.startswith("handle_"):
                setattr(self, name, getattr(sink, name))


def start(sink: MailSink, host: str = "127.0.0.1", port: int = 8025) -> Controller:
    """Serve `sink` on host:port in a background thread; `.stop()` the result to end it."""
    # aiosmtpd logs every command, addresses included; our one line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    controller = Controller(
        _Hooks(sink), hostname=host, port=port, enable_SMTPUTF8=True, ready_timeout=10
    )
    controller.start()
    return controller


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8025)
    parser.add_argument(
        "--dir",
        type=Path,
        default=DEFAULT_DIR,
        help="where to keep the .eml files (default: instance/mail)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    controller = start(MailSink(args.dir), args.host, args.port)
    log.info(
        "SMTP sink on smtp://%s:%d, keeping messages in %s",
        args.host,
        args.port,
        args.dir.resolve(),
    )
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    controller.stop()


if __name__ == "__main__":
    main()
