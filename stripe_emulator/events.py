"""Events and webhook delivery: signed POSTs from a background thread, with retries,
duplicates, shuffled order and re-sends for tests."""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from stripe_emulator import shapes_billing
from stripe_emulator.render import render
from stripe_emulator.store import Store
from stripe_emulator.wire import JSONDict


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """Stripe's `Stripe-Signature` header: `t=<ts>,v1=<hex HMAC-SHA256 of "t.payload">`
    (https://docs.stripe.com/webhooks#verify-manually). Signed with real time, so the
    SDK's 300 s tolerance holds even after the emulated clock moved on."""
    ts = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{ts}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def endpoint_wants(endpoint: JSONDict, event_type: str) -> bool:
    if endpoint.get("status") != "enabled":
        return False
    wanted = endpoint.get("enabled_events") or ["*"]
    return "*" in wanted or event_type in wanted


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    event_id: str = field(compare=False)
    endpoint_id: str = field(compare=False)
    attempt: int = field(compare=False, default=1)


@dataclass
class DeliveryMode:
    enabled: bool = True
    duplicate: int = 1  # deliver each event this many times
    shuffle: bool = False  # random delay per delivery -> out-of-order arrival
    shuffle_window: float = 0.3  # seconds


class WebhookDispatcher:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.mode = DeliveryMode()
        self.log: list[JSONDict] = []
        self._heap: list[_Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._busy = 0
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="stripe-emulator-webhooks")
        self._thread.daemon = True
        self._thread.start()

    def reset(self) -> None:
        with self._cond:
            self._heap.clear()
            self.log.clear()
            self.mode = DeliveryMode()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        self._thread.join(timeout=5)

    def enqueue(self, event_id: str, endpoint_ids: list[str], force: bool = False) -> None:
        with self._cond:
            if not (self.mode.enabled or force):
                return
            for endpoint_id in endpoint_ids:
                for _ in range(max(1, self.mode.duplicate)):
                    delay = random.uniform(0, self.mode.shuffle_window) if self.mode.shuffle else 0
                    heapq.heappush(
                        self._heap,
                        _Delivery(time.monotonic() + delay, next(self._seq), event_id, endpoint_id),
                    )
            self._cond.notify_all()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap) + self._busy

    def wait_idle(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (
                    not self._heap or self._heap[0].due > time.monotonic()
                ):
                    wait = self._heap[0].due - time.monotonic() if self._heap else None
                    self._cond.wait(wait)
                if self._stopped:
                    return
                job = heapq.heappop(self._heap)
                self._busy += 1
            try:
                self._deliver(job)
            finally:
                with self._cond:
                    self._busy -= 1
                    self._cond.notify_all()

    def _deliver(self, job: _Delivery) -> None:
        store = self.store
        with store.mutex:
            event = store.find(job.event_id, "event")
            endpoint = store.find(job.endpoint_id, "webhook_endpoint")
            if event is None or endpoint is None:
                return
            payload = json.dumps(render(store, event), indent=2)
            secret = str(endpoint["_secret"])
            url = str(endpoint["url"])
            config = store.config
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": sign(payload, secret),
        }
        status: int | None = None
        error: str | None = None
        request = urllib.request.Request(url, payload.encode(), headers, method="POST")  # noqa: S310
        # No proxies: endpoints are usually on localhost, whatever HTTP_PROXY says.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"webhook URL must be http(s): {url}")
            with opener.open(request, timeout=config.webhook_timeout) as resp:
                status = resp.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except (OSError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        ok = status is not None and 200 <= status < 300
        entry = {
            "event_id": job.event_id,
            "event_type": event.get("type"),
            "endpoint_id": job.endpoint_id,
            "url": url,
            "attempt": job.attempt,
            "status": status,
            "error": error,
            "ok": ok,
            "at": time.time(),
        }
        with self._cond:
            self.log.append(entry)
            if not ok and job.attempt < config.webhook_max_attempts:
                # Stripe retries with exponential backoff for up to 3 days in live mode
                # (https://docs.stripe.com/webhooks#retries); scaled down here.
                delay = config.webhook_retry_base * (2 ** (job.attempt - 1))
                heapq.heappush(
                    self._heap,
                    _Delivery(
                        time.monotonic() + delay,
                        next(self._seq),
                        job.event_id,
                        job.endpoint_id,
                        job.attempt + 1,
                    ),
                )
        if ok:
            with store.mutex:
                event["pending_webhooks"] = max(0, int(event["pending_webhooks"]) - 1)


class EventBus:
    """Creates events (visible at once in /v1/events) and hands them to the dispatcher
    when the request that caused them has finished."""

    def __init__(self, store: Store, dispatcher: WebhookDispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher

    def create(
        self,
        event_type: str,
        obj: JSONDict,
        *,
        previous_attributes: JSONDict | None = None,
        request_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[str, list[str]]:
        store = self.store
        with store.mutex:
            endpoints = [
                e["id"] for e in store.all("webhook_endpoint") if endpoint_wants(e, event_type)
            ]
            evt = shapes_billing.event(
                event_type,
                render(store, obj),
                store.clock.now(),
                previous_attributes=previous_attributes,
                request_id=request_id,
                idempotency_key=idempotency_key,
                pending_webhooks=len(endpoints),
            )
            store.add(evt)
        return evt["id"], endpoints

    def resend(self, since: int | None = None, types: list[str] | None = None) -> int:
        count = 0
        store = self.store
        with store.mutex:
            events = list(reversed(store.all("event")))
            endpoints = store.all("webhook_endpoint")
        for evt in events:
            if since is not None and int(evt["created"]) < since:
                continue
            if types and evt["type"] not in types:
                continue
            targets = [e["id"] for e in endpoints if endpoint_wants(e, evt["type"])]
            self.dispatcher.enqueue(evt["id"], targets, force=True)
            count += 1
        return count


def previous_attributes(before: JSONDict, after: JSONDict) -> JSONDict:
    """Top-level keys whose values changed, with their old values (Stripe's
    `data.previous_attributes`)."""
    prev: dict[str, Any] = {}
    for key, old in before.items():
        if after.get(key) != old:
            prev[key] = old
    return prev
