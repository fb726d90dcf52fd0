"""`flask` commands (`flask --app seatsvc.wsgi …`): the one home of the operators' CLI.

`db upgrade`, `billing …`, `notifications …`, `stripe …`. Every command runs with the
app's own runtime (`seatsvc.cli.common.app_runtime`), so jobs run by hand here see
exactly the configuration the web process has.
"""

from __future__ import annotations

import click
from flask import Flask

from seatsvc import migrate
from seatsvc.cli.billing import billing_group
from seatsvc.cli.common import app_runtime
from seatsvc.cli.notifications import notifications
from seatsvc.cli.stripe import stripe_group


def register_cli(app: Flask) -> None:
    app.cli.add_command(billing_group)
    app.cli.add_command(notifications)
    app.cli.add_command(stripe_group)
    app.cli.add_command(db_group)


@click.group("db")
def db_group() -> None:
    """Database schema (Alembic)."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
def upgrade(revision: str) -> None:
    """Migrate the database to REVISION (default: head)."""
    migrate.upgrade(app_runtime().config.database_url, revision)
    click.echo(f"database at {revision}")
