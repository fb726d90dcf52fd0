"""Operate billing by hand: `flask billing sync AGENCY|--all`, `drain`, `bootstrap-prices`."""

from __future__ import annotations

import click
from sqlalchemy import select

from seatsvc.billing.catalog import ensure_prices
from seatsvc.billing.gateway import stripe_client
from seatsvc.cli.common import app_runtime
from seatsvc.models import Agency
from workers import billing


@click.group("billing")
def billing_group() -> None:
    """Stripe sync: run it now, enqueue what is pending, create the dev prices."""


@billing_group.command("sync")
@click.argument("agency_id", required=False)
@click.option("--all", "every", is_flag=True, help="every agency, one after the other")
def sync_now(agency_id: str | None, every: bool) -> None:
    """Converge Stripe to the ledger now, in this process (safe to repeat)."""
    if bool(agency_id) == every:
        raise click.UsageError("name one AGENCY_ID or pass --all")
    runtime = app_runtime()
    if every:
        agency_ids = runtime.transaction(
            lambda s: list(s.scalars(select(Agency.id).order_by(Agency.id)))
        )
    else:
        agency_ids = [str(agency_id)]
    for one in agency_ids:
        click.echo(f"{one}: {billing.sync_agency(one)}")


@billing_group.command("drain")
@click.option("--older-than", default=0, show_default=True, help="seconds since the last change")
def drain(older_than: int) -> None:
    """Enqueue a sync for every agency whose seat changes have not reached Stripe."""
    app_runtime()
    click.echo(f"{billing.requeue_pending_syncs(older_than)} agency sync(s) queued")


@billing_group.command("invoice")
@click.argument("agency_id")
def invoice(agency_id: str) -> None:
    """Invoice the agency's pending prorations now (counts toward today's invoices)."""
    app_runtime()
    click.echo(billing.invoice_agency(agency_id))


@billing_group.command("bootstrap-prices")
def bootstrap_prices() -> None:
    """Create the Base and Voice per-seat prices (lookup keys seatsvc_base/voice) if missing."""
    gateway_client = stripe_client(app_runtime().config)
    for seat, price in ensure_prices(gateway_client).items():
        click.echo(f"STRIPE_PRICE_{seat.upper()}={price}")
