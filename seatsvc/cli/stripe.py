"""Operate webhooks and reconciliation by hand: `flask stripe reconcile`, `flask stripe events`.

Both run in this process (no worker needed) and are safe to repeat: the
handlers re-fetch from Stripe and only change what disagrees.
"""

from __future__ import annotations

import json

import click

from seatsvc.billing.reconcile import compare_with_stripe
from seatsvc.cli.common import app_runtime
from webhooks import events
from webhooks.recovery import recover_missed_events
from workers import context, stripe_events


@click.group("stripe")
def stripe_group() -> None:
    """Stripe webhooks and reconciliation."""


@stripe_group.command("reconcile")
@click.argument("agency_id", required=False)
@click.option("--all", "every", is_flag=True, help="every agency, and recover missed events")
def reconcile_now(agency_id: str | None, every: bool) -> None:
    """Compare the ledger with Stripe now and heal what disagrees."""
    if bool(agency_id) == every:
        raise click.UsageError("name one AGENCY_ID or pass --all")
    runtime = app_runtime()
    gateway = context.gateway(runtime)
    recovered = recover_missed_events(runtime, gateway) if every else 0
    report = compare_with_stripe(runtime, gateway, agency_ids=None if every else [str(agency_id)])
    report.events_recovered = recovered
    click.echo(json.dumps(report.as_dict(), indent=2, sort_keys=True))


@stripe_group.group("events")
def events_group() -> None:
    """Stored Stripe events."""


@events_group.command("reprocess")
@click.option("--id", "event_ids", multiple=True, help="an event id (repeatable)")
@click.option("--type", "event_type", help="every stored event of this type")
@click.option("--failed", is_flag=True, help="every event whose handling failed")
def reprocess(event_ids: tuple[str, ...], event_type: str | None, failed: bool) -> None:
    """Run stored events through their handlers again, oldest first (safe to repeat)."""
    if not (event_ids or event_type or failed):
        raise click.UsageError("pass --id, --type or --failed")
    selected = app_runtime().transaction(
        lambda s: events.select_for_reprocess(s, event_ids, event_type, failed)
    )
    missing = set(event_ids) - set(selected)
    for event_id in sorted(missing):
        click.echo(f"{event_id}\tnot stored", err=True)
    for event_id, outcome in stripe_events.reprocess(selected):
        click.echo(f"{event_id}\t{outcome}")
    click.echo(f"{len(selected)} event(s) reprocessed")
    if missing:
        raise SystemExit(1)
