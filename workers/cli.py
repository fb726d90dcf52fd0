"""Operate the notifier by hand: `python -m workers.cli drain|failed|retry ID`.

`notifications` is a click group; the app's `flask` CLI can mount it too
(`app.cli.add_command(workers.cli.notifications)` → `flask notifications drain`).
"""

from __future__ import annotations

from datetime import timedelta

import click
from sqlalchemy import select, update

from seatsvc.models import Notification
from seatsvc.types import NotificationStatus
from workers import context, dispatch


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
    queued = dispatch.sweep(context.runtime(), timedelta(seconds=older_than))
    click.echo(f"{queued} notification(s) queued")


@notifications.command("failed")
def failed() -> None:
    """List notifications that failed for good, with the reason."""
    with context.runtime().db.session() as session:
        rows = session.scalars(
            select(Notification)
            .where(Notification.status == NotificationStatus.FAILED)
            .order_by(Notification.id)
        )
        for row in rows:
            click.echo(f"{row.id}\t{row.kind}\t{row.agency_id}\t{row.attempts}\t{row.last_error}")


@notifications.command("retry")
@click.argument("notification_id", type=int)
def retry(notification_id: int) -> None:
    """Send a failed (or skipped) notification again, e.g. after an address was fixed."""
    runtime = context.runtime()
    with runtime.db.session() as session, session.begin():
        changed = session.execute(
            update(Notification)
            .where(
                Notification.id == notification_id,
                Notification.status.in_([NotificationStatus.FAILED, NotificationStatus.SKIPPED]),
            )
            .values(status=NotificationStatus.PENDING, attempts=0, claimed_at=None)
        ).rowcount  # type: ignore[attr-defined]
    if not changed:
        raise click.ClickException("no failed or skipped notification with that id")
    from workers import queues

    dispatch.enqueue_notification(queues.queue(runtime.redis), notification_id, replace_ended=True)
    click.echo(f"notification {notification_id} queued")


if __name__ == "__main__":
    notifications()
