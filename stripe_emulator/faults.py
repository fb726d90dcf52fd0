"""Injected failures: which Stripe call fails, how, and whether the idempotency layer saves it.

What Stripe does, and so what each mode does:

- Stripe saves "the status code and body of the first request made for any given idempotency
  key, regardless of whether it succeeds or fails ... including 500 errors", but only "after
  the execution of an endpoint begins"; "if incoming parameters fail validation, or the
  request conflicts with another request that's executing concurrently, we don't save the
  idempotent result" (https://docs.stripe.com/api/idempotent_requests). So `error_before`
  and `error_after` (a 5xx once the endpoint ran) are saved and replayed under the key, while
  `lock_timeout` / `rate_limit` (429s: "rate limiters run before the API's idempotency
  layer", https://docs.stripe.com/error-handling) and `timeout` (the request never reached
  an endpoint) are not.
- A saved 5xx carries `Stripe-Should-Retry: false`: stripe-python's retry logic
  (`_http_client._should_retry`) notes "we expect the stripe-should-retry header to be false
  in most cases when a 500 is returned, since our idempotency framework would typically
  replay it anyway".
- `lost_answer` is a network error that cloaks a success (https://docs.stripe.com/error-low-level
  "Network errors"): the write is applied and its answer saved, the connection is dropped.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

# Modes that run the endpoint (their result is saved under the idempotency key).
ERROR_BEFORE = "error_before"  # the endpoint fails before writing anything
ERROR_AFTER = "error_after"  # the write is applied, the client gets the error
LOST_ANSWER = "lost_answer"  # the write is applied and saved, the connection drops
# Modes that never reach the endpoint (nothing applied, nothing saved).
TIMEOUT = "timeout"  # hold the request, then drop the connection
LOCK_TIMEOUT = "lock_timeout"  # 429 lock_timeout with Stripe-Should-Retry: true
RATE_LIMIT = "rate_limit"  # 429 rate_limit

MODES = (ERROR_BEFORE, ERROR_AFTER, LOST_ANSWER, TIMEOUT, LOCK_TIMEOUT, RATE_LIMIT)
SAVED_MODES = (ERROR_BEFORE, ERROR_AFTER, LOST_ANSWER)


def legacy_mode(status: int | str, execute: bool) -> str:
    """The mode the old `{"status", "execute"}` form of a rule asks for."""
    if status == "timeout":
        return LOST_ANSWER if execute else TIMEOUT
    if int(status) == 429 and not execute:
        return RATE_LIMIT
    return ERROR_AFTER if execute else ERROR_BEFORE


@dataclass
class FailureRule:
    status: int | str = 500  # HTTP code of the error modes; "timeout" in the legacy form
    count: int | None = 1  # how many hits are left; None: unlimited (until `until`)
    path_prefix: str = ""
    method: str = ""
    execute: bool = False  # legacy: run the request, then fail/drop its answer
    seconds: float | None = None  # timeout/lost_answer: how long to hold before dropping
    modes: list[str] = field(default_factory=list)  # one is picked at random per hit
    path: str = ""  # exact path; wins over path_prefix when set
    probability: float = 1.0  # chance that a matching call is hit
    until: float | None = None  # real time.time() after which the rule is spent
    seed: int | None = None
    hits: int = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.modes:
            self.modes = [legacy_mode(self.status, self.execute)]
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown failure mode(s) {unknown}; known: {list(MODES)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be between 0 and 1")
        if self.status != "timeout":
            self.status = int(self.status)
        self._rng = random.Random(self.seed)

    @property
    def spent(self) -> bool:
        expired = self.until is not None and time.time() > self.until
        return expired or (self.count is not None and self.count <= 0)

    def matches(self, method: str, path: str) -> bool:
        if self.spent:
            return False
        where = path == self.path if self.path else path.startswith(self.path_prefix)
        return where and (not self.method or self.method.upper() == method.upper())

    def roll(self) -> str | None:
        """Decide whether this matching call is hit; returns the mode, or None."""
        if self.probability < 1.0 and self._rng.random() >= self.probability:
            return None
        if self.count is not None:
            self.count -= 1
        self.hits += 1
        return self._rng.choice(self.modes)

    @property
    def error_status(self) -> int:
        return 500 if self.status == "timeout" else int(self.status)

    def as_dict(self) -> dict[str, Any]:
        return {
            "modes": list(self.modes),
            "status": self.status,
            "count": self.count,
            "path": self.path,
            "path_prefix": self.path_prefix,
            "method": self.method,
            "execute": self.execute,
            "seconds": self.seconds,
            "probability": self.probability,
            "until": self.until,
            "seed": self.seed,
            "hits": self.hits,
        }


@dataclass
class Hit:
    """One injected failure, as the server carries it out."""

    mode: str
    status: int
    seconds: float | None

    @property
    def runs_endpoint(self) -> bool:
        return self.mode in (ERROR_AFTER, LOST_ANSWER)
