"""In-memory state: every object by id, per-object write locks, idempotency records,
the request log, per-subscription rate-limit counters and the test knobs."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from stripe_emulator import errors
from stripe_emulator.clock import Clock
from stripe_emulator.faults import FailureRule, Hit
from stripe_emulator.wire import JSONDict, as_int, as_list, public

PREFIX_TO_KIND = {
    "cus": "customer",
    "prod": "product",
    "price": "price",
    "pm": "payment_method",
    "sub": "subscription",
    "si": "subscription_item",
    "in": "invoice",
    "ii": "invoiceitem",
    "il": "line_item",
    "evt": "event",
    "we": "webhook_endpoint",
    "seti": "setup_intent",
    "cs": "checkout.session",
    "bps": "billing_portal.session",
}


@dataclass
class Limits:
    """Per-subscription limits documented at https://docs.stripe.com/rate-limits."""

    quantity_updates_per_hour: int = 200
    invoices_per_minute: int = 10
    invoices_per_day: int = 20


@dataclass
class Config:
    latency: float = 0.0  # seconds added before every Stripe API request
    write_latency: float = 0.0  # seconds spent inside the per-object lock of each write
    limits: Limits = field(default_factory=Limits)
    idempotency_ttl: int = 24 * 3600  # Stripe keeps keys at least 24 h
    pending_update_ttl: int = 23 * 3600  # Stripe: a pending update expires after 23 h
    timeout_seconds: float = 5.0  # how long an injected "timeout" holds the request
    webhook_retry_base: float = 0.1  # scaled-down backoff: base * 2**(attempt-1)
    webhook_max_attempts: int = 4
    webhook_timeout: float = 3.0
    request_log_limit: int = 100_000  # oldest entries are dropped beyond this

    def update(self, data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key == "limits":
                for lk, lv in dict(value).items():
                    if not hasattr(self.limits, lk):
                        raise ValueError(f"unknown limit {lk}")
                    setattr(self.limits, lk, int(lv))
            elif hasattr(self, key):
                setattr(self, key, type(getattr(self, key))(value))
            else:
                raise ValueError(f"unknown config key {key}")

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in vars(self).items() if k != "limits"}
        out["limits"] = dict(vars(self.limits))
        return out


@dataclass
class IdempotencyRecord:
    fingerprint: tuple[str, str, str]
    status: int
    body: str
    headers: dict[str, str]
    created: float
    request_id: str


class Store:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.mutex = threading.RLock()
        self.config = Config()
        self._seq = itertools.count(1)
        self.objects: dict[str, JSONDict] = {}
        self._by_kind: dict[str, dict[str, JSONDict]] = {}
        self.idempotency: dict[str, IdempotencyRecord] = {}
        self.inflight_keys: set[str] = set()
        # The base URL callers reach this server at (Checkout and portal pages link to it).
        self.public_url = ""
        self._locked: set[str] = set()
        self._lock_guard = threading.Lock()
        self.request_log: list[JSONDict] = []
        self.failures: list[FailureRule] = []
        self.quantity_updates: dict[str, list[int]] = {}
        self.invoice_creations: dict[str, list[int]] = {}

    def reset(self) -> None:
        with self.mutex:
            self.objects.clear()
            self._by_kind.clear()
            self.idempotency.clear()
            self.inflight_keys.clear()
            self.request_log.clear()
            self.failures.clear()
            self.quantity_updates.clear()
            self.invoice_creations.clear()
            self.config = Config()

    # -- objects ---------------------------------------------------------------------
    def add(self, obj: JSONDict) -> JSONDict:
        with self.mutex:
            obj["_seq"] = next(self._seq)
            self.objects[obj["id"]] = obj
            self._by_kind.setdefault(str(obj["object"]), {})[obj["id"]] = obj
            return obj

    def find(self, obj_id: str, kind: str | None = None) -> JSONDict | None:
        with self.mutex:
            obj = self.objects.get(obj_id)
            if obj is None or obj.get("_deleted"):
                return None
            if kind is not None and obj.get("object") != kind:
                return None
            return obj

    def get(self, obj_id: str, kind: str, param: str = "id") -> JSONDict:
        obj = self.find(obj_id, kind) if isinstance(obj_id, str) else None
        if obj is None:
            raise errors.resource_missing(kind.replace("_", " "), str(obj_id), param)
        return obj

    def all(self, kind: str) -> list[JSONDict]:
        """Objects of one kind, newest first (Stripe's list order)."""
        with self.mutex:
            found = [o for o in self._by_kind.get(kind, {}).values() if not o.get("_deleted")]
        return sorted(found, key=lambda o: (o.get("created", 0), o["_seq"]), reverse=True)

    def snapshot(self, obj: JSONDict) -> JSONDict:
        with self.mutex:
            snap: JSONDict = public(obj)
            return snap

    # -- per-object lock (Stripe's lock_timeout) -------------------------------------
    @contextmanager
    def object_lock(self, obj_id: str | None) -> Iterator[None]:
        """Hold Stripe's per-object write lock. A write that finds the object locked by
        another in-flight request fails at once with 429 `lock_timeout` instead of waiting."""
        if obj_id is None:
            yield
            return
        with self._lock_guard:
            if obj_id in self._locked:
                raise errors.lock_timeout()
            self._locked.add(obj_id)
        try:
            if self.config.write_latency > 0:
                time.sleep(self.config.write_latency)
            yield
        finally:
            with self._lock_guard:
                self._locked.discard(obj_id)

    # -- per-subscription limits -----------------------------------------------------
    def _recent(self, table: dict[str, list[int]], sub_id: str, window: int) -> list[int]:
        now = self.clock.now()
        return [t for t in table.get(sub_id, []) if t > now - window]

    def check_quantity_update(self, sub_id: str) -> None:
        with self.mutex:
            limit = self.config.limits.quantity_updates_per_hour
            if len(self._recent(self.quantity_updates, sub_id, 3600)) >= limit:
                raise errors.rate_limited(
                    f"Too many quantity updates for subscription {sub_id}: at most {limit} "
                    "quantity updates per subscription per hour are allowed. "
                    "See https://stripe.com/docs/rate-limits."
                )

    def record_quantity_update(self, sub_id: str) -> None:
        with self.mutex:
            now = self.clock.now()
            stamps = [t for t in self.quantity_updates.get(sub_id, []) if t > now - 3600]
            self.quantity_updates[sub_id] = [*stamps, now]

    def check_invoice_creation(self, sub_id: str) -> None:
        with self.mutex:
            limits = self.config.limits
            for window, limit, label in (
                (60, limits.invoices_per_minute, "minute"),
                (86400, limits.invoices_per_day, "day"),
            ):
                if len(self._recent(self.invoice_creations, sub_id, window)) >= limit:
                    raise errors.rate_limited(
                        f"Too many new invoices for subscription {sub_id}: at most {limit} "
                        f"new invoices per subscription per {label} are allowed. "
                        "See https://stripe.com/docs/rate-limits."
                    )

    def record_invoice_creation(self, sub_id: str) -> None:
        with self.mutex:
            now = self.clock.now()
            stamps = [t for t in self.invoice_creations.get(sub_id, []) if t > now - 86400]
            self.invoice_creations[sub_id] = [*stamps, now]

    # -- idempotency -----------------------------------------------------------------
    def prune_idempotency(self) -> None:
        with self.mutex:
            cutoff = self.clock.now_float() - self.config.idempotency_ttl
            for key in [k for k, r in self.idempotency.items() if r.created < cutoff]:
                del self.idempotency[key]

    # -- failure injection -----------------------------------------------------------
    def take_failure(self, method: str, path: str) -> Hit | None:
        """The first armed rule that matches and whose dice say so hits this call."""
        with self.mutex:
            self.failures = [r for r in self.failures if not r.spent]
            for rule in self.failures:
                if rule.matches(method, path):
                    mode = rule.roll()
                    if mode is not None:
                        return Hit(mode, rule.error_status, rule.seconds)
            return None


def paginate(items: list[JSONDict], params: dict[str, Any], url: str) -> JSONDict:
    """Stripe's cursor pagination over a newest-first list."""
    limit = as_int(params.get("limit"), 10) or 10
    limit = max(1, min(limit, 100))
    ids = [o["id"] for o in items]
    start, end = 0, len(items)
    if params.get("starting_after"):
        cursor = str(params["starting_after"])
        if cursor not in ids:
            raise errors.resource_missing("object", cursor, "starting_after")
        start = ids.index(cursor) + 1
        page = items[start : start + limit]
        more = start + limit < end
    elif params.get("ending_before"):
        cursor = str(params["ending_before"])
        if cursor not in ids:
            raise errors.resource_missing("object", cursor, "ending_before")
        end = ids.index(cursor)
        page = items[max(0, end - limit) : end]
        more = end - limit > 0
    else:
        page = items[:limit]
        more = len(items) > limit
    return {"object": "list", "data": page, "has_more": more, "url": url}


def expand_paths(params: dict[str, Any]) -> list[str]:
    return [str(p) for p in as_list(params.get("expand"))]


def matches_created(obj: JSONDict, created: Any) -> bool:
    """Stripe's `created` filter: an int, or a hash of gt/gte/lt/lte."""
    if created is None or created == "":
        return True
    ts = int(obj.get("created", 0))
    if not isinstance(created, dict):
        return ts == int(created)
    checks = {
        "gt": lambda v: ts > v,
        "gte": lambda v: ts >= v,
        "lt": lambda v: ts < v,
        "lte": lambda v: ts <= v,
    }
    return all(checks[k](int(v)) for k, v in created.items() if k in checks)
