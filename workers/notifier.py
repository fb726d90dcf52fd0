"""Notifier jobs: send one notification row (exactly once, `seatsvc.mail.delivery`);
requeue the rows Redis lost or never got."""

from __future__ import annotations

import logging
from datetime import timedelta

from seatsvc.enqueue import enqueue_notifications
from seatsvc.mail.delivery import deliver
from seatsvc.services.outbox import notifications_due
from workers import context

log = logging.getLogger(__name__)


def send_notification(notification_id: int) -> str:
    """RQ job: send notification `notification_id` unless it was already handled."""
    return deliver(context.runtime(), notification_id)


def requeue_due_notifications(older_than_seconds: int = 60, limit: int = 1000) -> int:
    """Cron (and `flask notifications drain`): enqueue every row nobody is working on."""
    rt = context.runtime()
    ids = rt.transaction(
        lambda s: notifications_due(s, timedelta(seconds=older_than_seconds), limit)
    )
    queued = enqueue_notifications(rt.redis, ids)
    if ids:
        log.info("notifications: %d due, %d queued", len(ids), queued)
    return queued
