"""Operate the notifier by hand: `flask notifications drain|failed|retry ID`."""

from __future__ import annotations

import click
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from seatsvc.cli.common import app_runtime
from seatsvc.enqueue import enqueue_notifications
from seatsvc.models import Notification
from seatsvc.types import NotificationStatus
from workers.notifier import requeue_due_notifications


@click.group("notifications")
def notifications() -> None:
    """Emails owed: re-enqueue, inspect, retry."""


@notifications.command("drain")
@click.option(
    "--older-than",
    default=0,
    show_default=True,
    help="only rows pending for at least this many seconds",
)
def drain(older_than: int) -> None:
    """Enqueue every pending notification (and those claimed by a dead worker)."""
    app_runtime()
    queued = requeue_due_notifications(older_than)
    click.echo(f"{queued} notification(s) queued")


@notifications.command("failed")
def failed() -> None:
    """List notifications that failed for good, with the reason."""
    rows = app_runtime().transaction(
        lambda s: [
            f"{row.id}\t{row.kind}\t{row.agency_id}\t{row.attempts}\t{row.last_error}"
            for row in s.scalars(
                select(Notification)
                .where(Notification.status == NotificationStatus.FAILED)
                .order_by(Notification.id)
            )
        ]
    )
    for line in rows:
        click.echo(line)


@notifications.command("retry")
@click.argument("notification_id", type=int)
def retry(notification_id: int) -> None:
    """Send a failed (or skipped) notification again, e.g. after an address was fixed."""
    runtime = app_runtime()

    def reopen(session: Session) -> int:
        result = session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status.in_([NotificationStatus.FAILED, NotificationStatus.SKIPPED]),
            )
            .values(status=NotificationStatus.PENDING, attempts=0, claimed_at=None)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]

    if not runtime.transaction(reopen):
        raise click.ClickException("no failed or skipped notification with that id")
    enqueue_notifications(runtime.redis, [notification_id])
    click.echo(f"notification {notification_id} queued")
