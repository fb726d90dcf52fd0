"""Reconcile jobs: the ledger and Stripe agree even when webhooks are lost.

The hourly job (rq cron, and `flask stripe reconcile --all`) first recovers
missed events (`events.list` since the newest one stored), then compares every
agency with Stripe's subscription list (`seatsvc.billing.reconcile`). What it
did is logged and returned as the job's result.
"""

from __future__ import annotations

import logging
from typing import Any

from seatsvc.billing.reconcile import Report, compare_with_stripe
from webhooks.recovery import recover_missed_events
from workers import context

log = logging.getLogger(__name__)

RECONCILE_SECONDS = 3600  # the cron's interval (workers/scheduler.py)


def reconcile_all() -> dict[str, Any]:
    """Cron: recover missed events, compare every agency with Stripe, heal."""
    rt = context.runtime()
    gateway = context.gateway(rt)
    recovered = recover_missed_events(rt, gateway)
    report = compare_with_stripe(rt, gateway)
    report.events_recovered = recovered
    _log(report)
    return report.as_dict()


def reconcile_one(agency_id: str) -> dict[str, Any]:
    """One agency now (`POST /v1/agencies/{id}/reconcile`): a fresh retrieve, then heal."""
    rt = context.runtime()
    report = compare_with_stripe(rt, context.gateway(rt), agency_ids=[agency_id])
    _log(report)
    return report.as_dict()


def _log(report: Report) -> None:
    log.info(
        "reconcile: %d agencies, %d in agreement, %d healed, %d adopted, %d syncs, "
        "%d missing in Stripe, %d events recovered, %d Stripe calls, %.1f s",
        report.agencies,
        report.in_agreement,
        report.healed,
        len(report.adopted),
        report.syncs_enqueued,
        len(report.missing_in_stripe),
        report.events_recovered,
        report.stripe_calls,
        report.seconds,
    )
