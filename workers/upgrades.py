"""Upgrade jobs: end a trial and charge the first invoice once a card is on file.

The upgrade row (`plan_upgrades`, status `ready`) is the truth; this job is a nudge.
It runs on the billing queue under the agency's billing lock, so it never races a
quantity sync or a webhook's healing on the same subscription.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import get_current_job

from seatsvc.billing import upgrade_flow
from seatsvc.billing.gateway import PaymentDeclined, StripePermanent
from seatsvc.billing.payments import PaymentsGateway
from seatsvc.enqueue import enqueue_upgrade
from seatsvc.models import utcnow
from seatsvc.services import upgrades
from workers import context

log = logging.getLogger(__name__)


def charge_upgrade(agency_id: str) -> str:
    """Safe to run any number of times: an upgrade is charged once (keys, row status)."""
    rt = context.runtime()
    payments = PaymentsGateway(context.gateway(rt))
    try:
        return upgrade_flow.charge_ready_upgrade(rt, payments, agency_id)
    except PaymentDeclined as error:
        # Refused outright (not an invoice left open): the admins act, no retry storm.
        log.warning("upgrade of %s declined: %s", agency_id, error)
        return f"declined: {error}"
    except StripePermanent:
        job = get_current_job()
        if job is not None:  # Stripe refused the request itself: retrying cannot help
            job.retries_left = 0
        raise


def requeue_ready_upgrades(older_than_seconds: int = 60) -> int:
    """Cron: nudge again every upgrade left `ready` (its enqueue was lost, Redis was down)."""
    rt = context.runtime()
    cutoff = utcnow() - timedelta(seconds=older_than_seconds)
    agency_ids = rt.transaction(lambda s: upgrades.ready_agency_ids(s, cutoff))
    for agency_id in agency_ids:
        enqueue_upgrade(rt.redis, agency_id)
    return len(agency_ids)
