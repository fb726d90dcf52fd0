"""One writer per Stripe subscription, across every worker and host.

Stripe answers 429 `lock_timeout` to concurrent writes on one subscription, and a
comparison must not interleave with a sync: both take the agency's Redis lock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError

from seatsvc.billing.gateway import StripeTransient

log = logging.getLogger(__name__)


@contextmanager
def agency_lock(connection: redis.Redis, agency_id: str, seconds: int) -> Iterator[None]:
    lock = connection.lock(
        f"seatsvc:billing-lock:{agency_id}", timeout=seconds, blocking_timeout=seconds
    )
    if not lock.acquire():
        raise StripeTransient(f"agency {agency_id} is being synced by another worker")
    try:
        yield
    finally:
        try:
            lock.release()
        except LockError:  # expired while we worked: the next holder is already safe
            log.warning("billing lock for %s expired before release", agency_id)
