"""Delivery: turn one notification row into one email, exactly once.

A row moves `pending` → `sending` (claimed) → `sent`, or → `failed` (the
server refused the message for good) or `skipped` (moot, e.g. an invite that
was replaced before it could be sent). A transient failure puts it back to
`pending` and re-raises, so RQ retries the job with backoff.

Exactly once, and where it stops being exactly once:
- The claim is one conditional UPDATE (`WHERE status = 'pending'`, or `sending`
  with an expired lease), committed before any SMTP traffic. Two workers racing,
  a job run twice, or a re-run from the dashboard after success: only one claim
  succeeds and the others return without sending.
- The row is marked `sent` in a second transaction after the server accepted
  the message. That write is a conditional UPDATE, safe to repeat, so a dropped
  database connection is retried with backoff for RECORD_PATIENCE seconds.
  Before it, the acceptance is noted in Redis (`seatsvc.mail.sent_notes`, holding
  the claim): a row left `sending` because the database stayed away
  longer is marked `sent` by the job's next run (its RQ retry, or the sweep once
  the lease expires) without a second send.
- What is left: a worker that dies between the server's acceptance and the Redis
  note, or Redis and the database both unreachable at that moment, leaves the row
  `sending`, and after the lease the sweep sends it again. We choose at-least-once
  there over at-most-once (a lost invite locks a clinician out), and the re-send
  carries the same `Message-ID` (derived from the notification's dedupe key), so
  mail systems and clients can recognise it as a duplicate. No SMTP transaction
  can be made atomic with a database commit.
- The lease (CLAIM_LEASE) is far longer than a job may run (`seatsvc.enqueue.NOTIFIER_JOB_TIMEOUT`,
  plus the SMTP timeouts inside it), so a live worker never loses its claim to another.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from seatsvc.config import Config
from seatsvc.db import DatabaseUnavailable
from seatsvc.mail import compose as emails
from seatsvc.mail import sent_notes
from seatsvc.mail.sent_notes import SentNote
from seatsvc.mail.smtp import Mailer, PermanentDeliveryError, TransientDeliveryError
from seatsvc.models import Agency, Invite, Member, Notification, utcnow
from seatsvc.redaction import redact
from seatsvc.runtime import Runtime
from seatsvc.services.invites import invite_token
from seatsvc.services.outbox import CLAIM_LEASE
from seatsvc.types import MemberStatus, NotificationKind, NotificationStatus

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 20  # claims of one row, across RQ retries and sweeps, before giving up
# How long the bookkeeping after a send keeps retrying a lost database connection
# (well inside the job's timeout, `seatsvc.enqueue.NOTIFIER_JOB_TIMEOUT`).
RECORD_PATIENCE = 45.0
ADMIN_KINDS = frozenset(NotificationKind) - {NotificationKind.INVITE}


class Moot(Exception):
    """Sending this notification no longer makes sense; the row is `skipped`."""


@dataclass(frozen=True)
class Outgoing:
    """A claimed notification, composed and ready for SMTP."""

    notification_id: int
    claim: int  # the row's `attempts` after our claim: whose claim it is
    kind: NotificationKind
    message: EmailMessage
    sender: str
    recipients: list[str]
    dedupe_key: str  # names the row across databases (ids repeat after a restore)


def deliver(runtime: Runtime, notification_id: int) -> str:
    """Claim, compose, send, record. Returns what happened, for the job's result."""
    config = runtime.config
    if _recorded_late(runtime, notification_id):
        return "sent (recorded after the database came back)"
    claimed = runtime.transaction(
        lambda s: _claim_and_compose(s, config, notification_id, utcnow())
    )
    if isinstance(claimed, str):
        log.info("notification %s: %s", notification_id, claimed)
        return claimed
    try:
        delivery = Mailer.from_url(config.smtp_url).send(
            claimed.message, claimed.sender, claimed.recipients
        )
    except PermanentDeliveryError as error:
        # Recorded on the row (status failed, last_error) and returned: retrying
        # the job cannot change a 5xx, so it is an outcome, not a job failure.
        _record(runtime, claimed, NotificationStatus.FAILED, str(error))
        log.warning(
            "notification %s (%s) refused for good: %s", notification_id, claimed.kind, error
        )
        return f"failed: {error}"
    except TransientDeliveryError as error:
        gave_up = claimed.claim >= MAX_ATTEMPTS
        status = NotificationStatus.FAILED if gave_up else NotificationStatus.PENDING
        reason = f"gave up after {claimed.claim} attempts: {error}" if gave_up else str(error)
        _record(runtime, claimed, status, reason)
        if gave_up:
            log.warning("notification %s (%s): %s", notification_id, claimed.kind, reason)
            return f"failed: {reason}"
        raise  # RQ retries with backoff; the sweep takes over if retries run out
    except BaseException:
        # Not an SMTP verdict (a bug, a timeout, a kill): give the row back so a
        # retry can claim it at once instead of waiting out the lease.
        _record(runtime, claimed, NotificationStatus.PENDING, "interrupted while sending")
        raise
    _note_sent(runtime, claimed)
    note = None
    if delivery.refused:
        note = f"{delivery.refused} of {delivery.recipients} recipients refused: {delivery.refusal}"
    try:
        _record(runtime, claimed, NotificationStatus.SENT, note)
    except DatabaseUnavailable:
        _note_sent(runtime, claimed, gave_up=True)
        raise  # RQ retries the job; its next run records the send without sending
    log.info(
        "notification %s (%s) sent to %d recipient(s)",
        notification_id,
        claimed.kind,
        delivery.recipients - delivery.refused,
    )
    return "sent"


def _claim_and_compose(
    session: Session, config: Config, notification_id: int, now: datetime
) -> Outgoing | str:
    claimable = or_(
        Notification.status == NotificationStatus.PENDING,
        and_(
            Notification.status == NotificationStatus.SENDING,
            Notification.claimed_at < now - CLAIM_LEASE,
        ),
    )
    claimed = session.execute(
        update(Notification)
        .where(Notification.id == notification_id, claimable)
        .values(
            status=NotificationStatus.SENDING, claimed_at=now, attempts=Notification.attempts + 1
        )
        .execution_options(synchronize_session=False)
    )
    row = session.get(Notification, notification_id, populate_existing=True)
    if row is None:
        return "no such notification"
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return f"nothing to do: already {row.status}"
    try:
        return compose(session, config, row, now)
    except Moot as why:
        _finish(row, NotificationStatus.SKIPPED, f"skipped: {why}")
        return f"skipped: {why}"
    except PermanentDeliveryError as error:
        _finish(row, NotificationStatus.FAILED, str(error))
        return f"failed: {error}"


def compose(session: Session, config: Config, row: Notification, now: datetime) -> Outgoing:
    """The email a notification row stands for, from the rows as they are now."""
    kind = NotificationKind(row.kind)
    agency = session.get(Agency, row.agency_id)
    if agency is None:
        raise PermanentDeliveryError("the agency no longer exists")
    member = session.get(Member, row.member_id) if row.member_id else None
    if row.member_id and member is None:
        raise PermanentDeliveryError("the member no longer exists")
    facts = _facts(session, config, kind, row.payload or {}, agency, member, now)
    if kind == NotificationKind.INVITE:
        assert member is not None
        recipients = [member.email]
    else:
        recipients = list(agency.admin_emails or [])
    if not recipients:
        raise PermanentDeliveryError("nobody to send it to")
    message = emails.build_message(
        rendered=emails.render(kind, facts),
        mail_from=config.mail_from,
        to=recipients,
        message_id=emails.message_id(row.agency_id, row.dedupe_key, config.mail_from),
        date=now,
        kind=kind,
    )
    return Outgoing(
        row.id,
        row.attempts,
        kind,
        message,
        emails.sender_address(config.mail_from),
        recipients,
        row.dedupe_key,
    )


def _facts(
    session: Session,
    config: Config,
    kind: NotificationKind,
    payload: dict[str, Any],
    agency: Agency,
    member: Member | None,
    now: datetime,
) -> dict[str, Any]:
    seat_type = payload.get("seat_type") or (member.seat_type if member else None)
    facts: dict[str, Any] = {
        "agency_name": agency.name,
        "audience": "member" if kind == NotificationKind.INVITE else "admin",
        "seat_label": emails.seat_label(seat_type),
        "member_email": member.email if member else None,
    }
    if kind == NotificationKind.SEAT_AUTO_ADDED:
        facts.update(
            seats_added=int(payload.get("seats_added", 1)),
            purchased_after=payload["purchased_after"],
        )
    elif kind == NotificationKind.MEMBER_BLOCKED:
        reason = str(payload.get("reason") or "no_capacity")
        facts.update(
            reason=reason,
            billing_status=agency.billing_status,
            reason_short=emails.reason_short(reason, seat_type),
            reason_text=emails.reason_text(
                reason,
                seat_type,
                payload.get("purchased"),
                agency.auto_add_cap,
                agency.trial_seat_limit,
                agency.billing_status,
            ),
        )
    elif kind == NotificationKind.INVITE:
        assert member is not None
        facts.update(_invite_facts(session, config, payload, member, now))
    elif kind == NotificationKind.PAYMENT_FAILED:
        facts.update(
            decline_reason=payload.get("reason"),
            amount_due=_money(payload.get("amount_due"), payload.get("currency")),
            invoice_url=payload.get("hosted_invoice_url") or payload.get("invoice_url"),
            next_attempt_at=emails.when(_moment(payload.get("next_payment_attempt"))),
        )
    elif kind == NotificationKind.TRIAL_WILL_END:
        ends = _moment(payload.get("trial_ends_at")) or agency.trial_ends_at
        facts.update(
            trial_ends_at=emails.when(ends),
            trial_ends_on=f"{ends:%A} {ends.day} {ends:%B}" if ends else "soon",
            has_payment_method=bool(payload.get("has_payment_method")),
            trial_seat_limit=emails.plural(agency.trial_seat_limit, "seat"),
        )
    elif kind == NotificationKind.UPGRADE_CONFIRMED:
        seats = payload.get("seats") or {}
        facts.update(
            seat_lines=[
                emails.plural(int(seats[seat]), f"{emails.seat_label(seat)} seat")
                for seat in ("base", "voice")
                if int(seats.get(seat) or 0) > 0
            ],
            amount_paid=_money(payload.get("amount_paid") or None, payload.get("currency")),
            invoice_id=payload.get("invoice_id"),
        )
    elif kind == NotificationKind.OVER_CAPACITY:
        facts.update(
            purchased=int(payload["purchased"]),
            used=int(payload["used"]),
            previous=payload.get("previous"),
        )
    return facts


def _invite_facts(
    session: Session, config: Config, payload: dict[str, Any], member: Member, now: datetime
) -> dict[str, Any]:
    """The accept link, rebuilt from the invite id; a link that cannot work is not sent."""
    invite = session.get(Invite, payload.get("invite_id"))
    if invite is None:
        raise Moot("the invite no longer exists")
    if invite.used_at is not None or invite.revoked_at is not None:
        raise Moot("the invite was already used or replaced by a newer one")
    if invite.expires_at <= now:
        raise Moot("the invite expired before it could be sent")
    if member.status != MemberStatus.INVITED:
        raise Moot(f"the member is {member.status}, no longer invited")
    token = invite_token(config.secret_key, invite.id)
    return {
        "accept_url": emails.accept_url(config.invite_accept_url, token),
        "expires_at": emails.when(invite.expires_at),
        "ttl_hours": round((invite.expires_at - invite.created_at).total_seconds() / 3600),
        # "Replaces any earlier link" only when there was one (an explicit invite of an
        # auto-joined member is flagged `reinvite` but is that member's first link).
        "reinvite": bool(payload.get("reinvite")) and _had_earlier_invite(session, invite),
    }


def _had_earlier_invite(session: Session, invite: Invite) -> bool:
    earlier = session.scalar(
        select(func.count())
        .select_from(Invite)
        .where(Invite.member_id == invite.member_id, Invite.id != invite.id)
        .where(Invite.created_at <= invite.created_at)
    )
    return bool(earlier)


def _money(amount: Any, currency: Any) -> str | None:
    if amount is None:
        return None
    return f"{int(amount) / 100:,.2f} {str(currency or '').upper()}".strip()


def _moment(value: Any) -> datetime | None:
    """A Stripe unix timestamp or an ISO 8601 string."""
    if value in (None, ""):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)


def _finish(row: Notification, status: NotificationStatus, note: str | None) -> None:
    row.status = status
    row.last_error = redact(note) if note else None
    row.claimed_at = None
    if status == NotificationStatus.SENT:
        row.sent_at = utcnow()


def _note_sent(runtime: Runtime, claimed: Outgoing, gave_up: bool = False) -> None:
    """The server accepted it: say so outside the database, in case its write is lost.
    `gave_up`: the sender stopped retrying that write, the next run may record it."""
    note = SentNote(claimed.claim, 0.0 if gave_up else time.time(), claimed.dedupe_key)
    sent_notes.remember(runtime.redis, claimed.notification_id, note)


def _recorded_late(runtime: Runtime, notification_id: int) -> bool:
    """A send whose `sent` write was lost: mark it now, and never send it again.

    Only once its sender has given up retrying that write (it said so, or
    RECORD_PATIENCE has passed since the send): until then the row is the live
    sender's to record."""
    note = sent_notes.recall(runtime.redis, notification_id, older_than=RECORD_PATIENCE)
    if note is None:
        return False  # (Redis away: the claim still stops a second send during the lease)

    def work(session: Session) -> int:
        result = session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.dedupe_key == note.dedupe_key,
                Notification.status == NotificationStatus.SENDING,
                Notification.attempts == note.claim,
            )
            .values(status=NotificationStatus.SENT, claimed_at=None, sent_at=utcnow())
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    if runtime.transaction(work, patience=RECORD_PATIENCE) != 1:
        return False  # already recorded (or a newer claim): the usual path decides
    log.warning("notification %s: sent earlier, recorded as sent only now", notification_id)
    return True


def _record(
    runtime: Runtime, claimed: Outgoing, status: NotificationStatus, note: str | None
) -> None:
    """Close our claim. A claim someone else took over (lease expired) is left alone.

    Repeatable (conditional on our claim), so a lost connection is retried; a commit
    that went through but whose answer was lost shows as the row already `status`."""

    def work(session: Session) -> int:
        values: dict[str, Any] = {
            "status": status,
            "last_error": redact(note) if note else None,
            "claimed_at": None,
        }
        if status == NotificationStatus.SENT:
            values["sent_at"] = utcnow()
        result = session.execute(
            update(Notification)
            .where(
                Notification.id == claimed.notification_id,
                Notification.status == NotificationStatus.SENDING,
                Notification.attempts == claimed.claim,
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    if runtime.transaction(work, patience=RECORD_PATIENCE) != 1 and not _has_status(
        runtime, claimed, status
    ):
        log.warning(
            "notification %s: our claim expired before we could record %s",
            claimed.notification_id,
            status,
        )


def _has_status(runtime: Runtime, claimed: Outgoing, status: NotificationStatus) -> bool:
    def work(session: Session) -> bool:
        row = session.get(Notification, claimed.notification_id)
        return row is not None and row.status == status and row.attempts == claimed.claim

    return runtime.transaction(work, patience=RECORD_PATIENCE)
