"""Send one email over SMTP, configured by a URL, and say whether a failure is worth a retry.

`SMTP_URL` forms:
  smtp://host:25                      plain (a local relay or the dev sink)
  smtp://user:password@host:587?starttls=1
  smtps://user:password@host:465      implicit TLS
  ...&timeout=20                      seconds for connect and each command (default 30)

Failures become `TransientDeliveryError` (connection trouble, 4xx: retry later)
or `PermanentDeliveryError` (5xx for the message or every recipient: retrying
cannot help). Their messages never carry an email address: exceptions end up
in worker logs and on the RQ dashboard, and those must not list clinicians.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from seatsvc.redaction import redact

DEFAULT_TIMEOUT = 30.0


class DeliveryError(Exception):
    """The message was not delivered; `str()` is redacted."""

    def __init__(self, reason: str) -> None:
        super().__init__(redact(reason))


class TransientDeliveryError(DeliveryError):
    """Worth retrying: the server or network may accept the message later."""


class PermanentDeliveryError(DeliveryError):
    """Retrying the same message cannot succeed (e.g. 550 unknown recipient)."""


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    implicit_tls: bool = False
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("SMTP_URL has no host")
        query = parse_qs(parts.query)
        implicit_tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=parts.port or (465 if implicit_tls else 25),
            implicit_tls=implicit_tls,
            starttls=_flag(query.get("starttls", ["0"])[-1]),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            timeout=float(query.get("timeout", [str(DEFAULT_TIMEOUT)])[-1]),
        )


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


@dataclass(frozen=True)
class Delivery:
    """What the server accepted; `refused` counts recipients refused outright."""

    recipients: int
    refused: int = 0
    refusal: str | None = None


class Mailer:
    """One SMTP connection per message: emails are rare, and nothing is left half-open."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    @classmethod
    def from_url(cls, url: str) -> Mailer:
        return cls(SmtpSettings.from_url(url))

    def send(self, message: EmailMessage, sender: str, recipients: list[str]) -> Delivery:
        try:
            smtp = self._connect()
            try:
                refused = smtp.send_message(message, from_addr=sender, to_addrs=recipients)
            finally:
                _quit_quietly(smtp)
        except (
            smtplib.SMTPAuthenticationError,
            smtplib.SMTPConnectError,
            smtplib.SMTPHeloError,
        ) as error:
            # Our credentials or the server's greeting: configuration, not this message.
            raise TransientDeliveryError(_reply(error.smtp_code, error.smtp_error)) from None
        except smtplib.SMTPRecipientsRefused as error:
            raise _recipients_refused(error.recipients) from None
        except smtplib.SMTPResponseException as error:
            raise _by_code(error.smtp_code, _reply(error.smtp_code, error.smtp_error)) from None
        except (smtplib.SMTPException, OSError) as error:
            # Disconnects, timeouts, refused connections, TLS trouble, a server
            # without STARTTLS or AUTH: a configuration or network problem that
            # a retry (after someone fixes it) can get past.
            raise TransientDeliveryError(f"{type(error).__name__}: {error}") from None
        if not refused:
            return Delivery(recipients=len(recipients))
        return Delivery(
            recipients=len(recipients),
            refused=len(refused),
            refusal="; ".join(sorted({_reply(code, text) for code, text in refused.values()})),
        )

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp: smtplib.SMTP
        if s.implicit_tls:
            smtp = smtplib.SMTP_SSL(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        else:
            smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
        try:
            if s.starttls and not s.implicit_tls:
                smtp.starttls(context=ssl.create_default_context())
            if s.username:
                smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp


def _quit_quietly(smtp: smtplib.SMTP) -> None:
    """QUIT, ignoring its reply: once DATA was accepted, the message is the server's."""
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()


def _reply(code: int, text: bytes | str) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip()


def _by_code(code: int, reason: str) -> DeliveryError:
    if 500 <= code < 600:
        return PermanentDeliveryError(reason)
    return TransientDeliveryError(reason)


def _recipients_refused(
    recipients: dict[str, tuple[int, bytes]],
) -> DeliveryError:
    """Every recipient refused: permanent only if every refusal is a 5xx."""
    codes = [code for code, _text in recipients.values()]
    reason = "every recipient refused: " + "; ".join(
        sorted({_reply(code, text) for code, text in recipients.values()})
    )
    if codes and all(500 <= code < 600 for code in codes):
        return PermanentDeliveryError(reason)
    return TransientDeliveryError(reason)
