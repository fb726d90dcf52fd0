"""`flask` commands: `flask --app seatsvc.wsgi db upgrade`."""

from __future__ import annotations

import click
from flask import Flask, current_app

from seatsvc import migrate


def register_cli(app: Flask) -> None:
    # The worker-side groups; imported here because workers import seatsvc, not the reverse.
    from workers.billing_cli import billing_group
    from workers.cli import notifications
    from workers.stripe_cli import stripe_group

    app.cli.add_command(billing_group)
    app.cli.add_command(notifications)
    app.cli.add_command(stripe_group)

    @app.cli.group("db")
    def db_group() -> None:
        """Database schema (Alembic)."""

    @db_group.command("upgrade")
    @click.argument("revision", default="head")
    def upgrade(revision: str) -> None:
        """Migrate the database to REVISION (default: head)."""
        url = current_app.config["SEATSVC"].database_url
        migrate.upgrade(url, revision)
        click.echo(f"database at {revision}")
