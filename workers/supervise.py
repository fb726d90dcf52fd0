"""Keep a long-running loop (an rq worker, the cron scheduler) alive through outages.

rq's work loop and its cron scheduler end on the first Redis error they do not expect
(a timeout, a refused connection outside the dequeue, a failed `register_death`), and
the process exits. Under `make run` honcho then stops the whole stack; in production
nothing may restart it. The supervisor logs, backs off (capped) and runs the loop
again, as a fresh worker that registers itself anew, until a stop is asked for.
"""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Callable
from types import FrameType

import redis
from rq.exceptions import StopRequested
from sqlalchemy.exc import OperationalError

from seatsvc.db import DatabaseUnavailable

log = logging.getLogger(__name__)

FIRST_DELAY = 0.5  # seconds before the first restart
MAX_DELAY = 10.0  # Redis back after a long outage: at most this long until we notice
HEALTHY_RUN = 60.0  # a run that lasted this long resets the backoff


class Supervisor:
    """Runs `once` again and again until it reports a deliberate end or a signal stops us.

    `once` returns True when the loop ended on purpose (burst done, warm shutdown),
    False (or raises) when it should be restarted.
    """

    def __init__(self, what: str, max_delay: float = MAX_DELAY) -> None:
        self.what = what
        self.max_delay = max_delay
        self.stopping = False

    def run(self, once: Callable[[], bool]) -> None:
        delay = FIRST_DELAY
        while not self.stopping:
            began = time.monotonic()
            try:
                if once():
                    return
                log.warning("%s stopped by itself; restarting in %.1f s", self.what, delay)
            except StopRequested:
                return
            except Exception as error:
                log.warning(
                    "%s failed (%s: %s); restarting in %.1f s",
                    self.what,
                    type(error).__name__,
                    error,
                    delay,
                    exc_info=not _is_outage(error),
                )
            if time.monotonic() - began > HEALTHY_RUN:
                delay = FIRST_DELAY
            self.pause(delay)
            delay = min(delay * 2, self.max_delay)

    def pause(self, seconds: float) -> None:
        """Sleep, stopping early on SIGTERM/SIGINT.

        The handlers rq left behind would talk to Redis (which may be what is down),
        so ours only take note; the next run installs rq's again.
        """
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        deadline = time.monotonic() + seconds
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.2))

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("%s: signal %d while waiting to restart: stopping", self.what, signum)
        self.stopping = True


def _is_outage(error: Exception) -> bool:
    """Redis or the database away: expected, logged without a traceback."""
    return isinstance(error, redis.RedisError | OSError | OperationalError | DatabaseUnavailable)
