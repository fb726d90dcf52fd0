"""A note in Redis that the SMTP server accepted a notification, kept apart from the
database: when the database loses the write that marks the row `sent`, the next run
reads the note and records the send instead of sending again (`seatsvc.mail.delivery`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)

NOTE_TTL = 7 * 24 * 3600  # far longer than any lease, retry or sweep


@dataclass(frozen=True)
class SentNote:
    claim: int  # the row's `attempts` when it was sent
    sent_at: float  # unix time; 0 once the sender gave up recording it
    dedupe_key: str  # names the row across databases (ids repeat after a restore)


def _key(notification_id: int) -> str:
    return f"seatsvc:notification-sent:{notification_id}"


def remember(connection: redis.Redis, notification_id: int, note: SentNote) -> None:
    """Best effort: Redis away only narrows what the note can save."""
    value = f"{note.claim}:{note.sent_at:.3f}:{note.dedupe_key}"
    try:
        connection.set(_key(notification_id), value, ex=NOTE_TTL)
    except redis.RedisError as error:
        log.warning("notification %s: could not note the send in Redis: %s", notification_id, error)


def recall(connection: redis.Redis, notification_id: int, older_than: float) -> SentNote | None:
    """The note, if there is one and its sender gave up on it (or it is `older_than` s)."""
    try:
        raw = connection.get(_key(notification_id))
    except redis.RedisError:
        return None
    if raw is None:
        return None
    claim, sent_at, dedupe_key = str(raw.decode() if isinstance(raw, bytes) else raw).split(":", 2)
    note = SentNote(int(claim), float(sent_at), dedupe_key)
    return note if time.time() - note.sent_at >= older_than else None
