"""One writer per Stripe subscription, across every worker and host.

Stripe answers 429 `lock_timeout` to concurrent writes on one subscription, and a
comparison must not interleave with a sync: both take the agency's Redis lock.

The lock is a short lease that its holder renews while it works: a live sync never
loses it however long it takes, and a SIGKILLed worker's lease runs out within
`seconds`, so the agency's next sync does not wait a long fixed timeout.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from redis.exceptions import LockError
from redis.lock import Lock

from seatsvc.billing.gateway import StripeTransient

log = logging.getLogger(__name__)

WAIT_SECONDS = 60  # how long a second sync waits for the agency's current one


@contextmanager
def agency_lock(connection: redis.Redis, agency_id: str, seconds: int) -> Iterator[None]:
    # thread_local=False: the renewing thread must see the token the holder got.
    lock = connection.lock(
        f"seatsvc:billing-lock:{agency_id}",
        timeout=seconds,
        blocking_timeout=max(seconds, WAIT_SECONDS),
        thread_local=False,
    )
    if not lock.acquire():
        raise StripeTransient(f"agency {agency_id} is being synced by another worker")
    stop = threading.Event()
    keeper = threading.Thread(
        target=_renew, args=(lock, stop, seconds / 3), name="billing-lock-renewal", daemon=True
    )
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join()
        try:
            lock.release()
        except LockError:  # expired while we worked: the next holder is already safe
            log.warning("billing lock for %s expired before release", agency_id)
        except redis.RedisError:  # Redis away: the lease runs out by itself
            log.warning("billing lock for %s not released (Redis unreachable)", agency_id)


def _renew(lock: Lock, stop: threading.Event, every: float) -> None:
    """Reset the lease to its full length every `every` seconds until told to stop."""
    while not stop.wait(every):
        try:
            lock.reacquire()
        except LockError:
            log.warning("billing lock %s was lost before its renewal", lock.name)
            return
        except redis.RedisError:
            log.warning("billing lock %s: Redis unreachable, renewal retried", lock.name)
