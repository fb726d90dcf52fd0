"""`StripeEmulator`: the server, its state and the test controls, usable in-process."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import stripe
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from stripe_emulator import checkout, lifecycle, routes_core, subscriptions
from stripe_emulator.clock import Clock
from stripe_emulator.context import Ctx
from stripe_emulator.control import ControlAPI
from stripe_emulator.events import EventBus, WebhookDispatcher
from stripe_emulator.faults import FailureRule
from stripe_emulator.render import render
from stripe_emulator.server import StripeApp
from stripe_emulator.store import Store
from stripe_emulator.wire import JSONDict

log = logging.getLogger("stripe_emulator")


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        log.debug("%s %s", self.requestline, code)


class StripeEmulator:
    """A stateful Stripe API emulator that the official SDK talks to over HTTP.

    >>> emu = StripeEmulator(); url = emu.start()
    >>> client = emu.client()          # stripe.StripeClient(base_addresses={"api": url})
    >>> emu.stop()
    """

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key  # None: any sk_test_/rk_test_ key is accepted
        self.clock = Clock()
        self.store = Store(self.clock)
        self.dispatcher = WebhookDispatcher(self.store)
        self.bus = EventBus(self.store, self.dispatcher)
        self.control = ControlAPI(self)
        self.app = StripeApp(self)
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.tick_seconds = 1.0  # how often due trial ends/renewals are processed

    def _tick(self) -> None:
        """Process what fell due as real time passed (the clock runs unless frozen)."""
        while not self._stop.wait(self.tick_seconds):
            try:
                self.advance(seconds=0)
            except Exception:
                log.exception("stripe emulator: processing due subscriptions failed")

    def _start_ticker(self) -> None:
        if self.tick_seconds > 0:
            threading.Thread(target=self._tick, name="stripe-emulator-clock", daemon=True).start()

    # -- lifecycle -------------------------------------------------------------------
    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on a background thread; returns the base URL (pass it as
        `base_addresses={"api": url}`)."""
        self._server = make_server(
            host, port, self.app, threaded=True, request_handler=_QuietHandler
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="stripe-emulator-http",
            daemon=True,
        )
        self._thread.start()
        self._start_ticker()
        return self.base_url

    def serve_forever(self, host: str = "127.0.0.1", port: int = 12111) -> None:
        self._server = make_server(host, port, self.app, threaded=True)
        self._start_ticker()
        self._server.serve_forever()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "emulator not started"
        return f"http://{self._server.host}:{self._server.server_port}"

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self.dispatcher.stop()

    def client(self, api_key: str = "sk_test_emulator", **kwargs: Any) -> stripe.StripeClient:
        kwargs.setdefault("max_network_retries", 0)
        return stripe.StripeClient(api_key, base_addresses={"api": self.base_url}, **kwargs)

    # -- state -----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every object, event, key, log entry and knob; restart the clock."""
        self.dispatcher.wait_idle(timeout=2)
        self.dispatcher.reset()
        self.store.reset()
        self.clock.reset()

    def get(self, obj_id: str) -> JSONDict | None:
        """Any stored object as Stripe would show it (None when unknown)."""
        with self.store.mutex:
            obj = self.store.objects.get(obj_id)
            return render(self.store, obj) if obj is not None else None

    def objects(self, kind: str) -> list[JSONDict]:
        with self.store.mutex:
            return [render(self.store, o) for o in self.store.all(kind)]

    def events(self, event_type: str | None = None) -> list[JSONDict]:
        """Events oldest first."""
        found = list(reversed(self.objects("event")))
        return [e for e in found if event_type is None or e["type"] == event_type]

    def configure(self, **settings: Any) -> dict[str, Any]:
        """Change knobs: latency, write_latency, limits={...}, idempotency_ttl,
        pending_update_ttl, timeout_seconds, webhook_retry_base, webhook_max_attempts,
        webhook_timeout."""
        with self.store.mutex:
            self.store.config.update(settings)
            return self.store.config.as_dict()

    # -- clock -----------------------------------------------------------------------
    def _ctx(self) -> Ctx:
        return Ctx(self.store, self.bus)

    def now(self) -> int:
        return self.clock.now()

    def freeze_clock(self, frozen: bool = True) -> int:
        self.clock.freeze(frozen)
        return self.clock.now()

    def advance(self, seconds: float | None = None, to: float | None = None) -> int:
        """Move the emulated clock forward, processing trial ends, renewals and
        pending-update expiry on the way. Returns the new time."""
        target = int(to if to is not None else self.clock.now_float() + float(seconds or 0))
        lifecycle.advance(self._ctx, target)
        return self.clock.now()

    # -- failure injection and the request log ---------------------------------------
    def fail_next(
        self,
        status: int | str = 500,
        count: int | None = None,
        path_prefix: str = "",
        method: str = "",
        execute: bool = False,
        seconds: float | None = None,
        *,
        mode: str | list[str] | None = None,
        path: str = "",
        probability: float = 1.0,
        for_seconds: float | None = None,
        seed: int | None = None,
    ) -> dict[str, Any]:
        """Arm a failure for matching Stripe calls (see faults.py for what Stripe saves).

        `mode`: "error_before" (status, default 500, before any write; saved under the
        idempotency key), "error_after" (the write is applied, the client gets the error;
        saved), "lost_answer" (applied, success saved, connection dropped after `seconds`),
        "timeout" (hold `seconds`, default timeout_seconds, then drop; nothing applied or
        saved), "lock_timeout" / "rate_limit" (429, not saved); a list picks one at random
        per hit. Without `mode` the legacy form applies: `status` 500/4xx → error_before
        (error_after with `execute=True`), 429 → rate_limit, "timeout" → timeout
        (lost_answer with `execute=True`).
        Targets: `method`, and `path` (exact) or `path_prefix`. Each matching call is hit
        with `probability`; the rule is spent after `count` hits (default 1, or unlimited
        with `for_seconds`) or `for_seconds` of real time. `seed` makes the dice repeatable.
        """
        modes = [mode] if isinstance(mode, str) else list(mode or [])
        if count is None:
            count = None if for_seconds is not None else 1
        rule = FailureRule(
            status=status,
            count=count,
            path_prefix=path_prefix,
            method=method,
            execute=execute,
            seconds=seconds,
            modes=modes,
            path=path,
            probability=float(probability),
            until=None if for_seconds is None else time.time() + float(for_seconds),
            seed=seed,
        )
        with self.store.mutex:
            self.store.failures.append(rule)
        return rule.as_dict()

    def failures(self) -> list[dict[str, Any]]:
        """The armed rules that can still hit."""
        with self.store.mutex:
            return [r.as_dict() for r in self.store.failures if not r.spent]

    def clear_failures(self) -> None:
        with self.store.mutex:
            self.store.failures.clear()

    def requests(self, path_prefix: str = "", method: str = "") -> list[JSONDict]:
        with self.store.mutex:
            return [
                dict(e)
                for e in self.store.request_log
                if e["path"].startswith(path_prefix)
                and (not method or e["method"] == method.upper())
            ]

    def clear_requests(self) -> None:
        with self.store.mutex:
            self.store.request_log.clear()

    # -- webhooks --------------------------------------------------------------------
    def add_webhook_endpoint(
        self, url: str, secret: str | None = None, enabled_events: list[str] | None = None
    ) -> JSONDict:
        """Register an endpoint with a secret of the caller's choosing (or a new whsec_)."""
        with self.store.mutex:
            params = {"url": url, "enabled_events": enabled_events or ["*"]}
            return routes_core.add_webhook_endpoint(self._ctx(), params, secret)

    def webhook_mode(self, **mode: Any) -> JSONDict:
        """enabled (bool), duplicate (int K), shuffle (bool), shuffle_window (seconds)."""
        current = self.dispatcher.mode
        for key, value in mode.items():
            if not hasattr(current, key):
                raise ValueError(f"unknown webhook mode {key}")
            setattr(current, key, type(getattr(current, key))(value))
        return dict(vars(current))

    def resend_events(self, since: int | None = None, types: list[str] | None = None) -> int:
        return self.bus.resend(since, types)

    def wait_for_webhooks(self, timeout: float = 10.0) -> bool:
        return self.dispatcher.wait_idle(timeout)

    def deliveries(self) -> list[JSONDict]:
        return list(self.dispatcher.log)

    # -- Checkout ---------------------------------------------------------------------
    def complete_checkout(self, session_id: str, card: str = "pm_card_visa") -> JSONDict:
        """The customer saved `card` on a setup-mode Checkout page: the events Stripe
        sends follow (payment_method.attached, setup_intent.succeeded,
        checkout.session.completed). A declined test card raises its card error."""
        store = self.store
        ctx = self._ctx()
        try:
            with store.mutex:
                session = store.get(session_id, "checkout.session")
                checkout.complete(ctx, session, card)
                result = render(store, session)
        finally:
            ctx.flush()
        return result

    # -- the dashboard ---------------------------------------------------------------
    def dashboard_set_quantity(
        self, item_id: str, quantity: int, proration_behavior: str = "create_prorations"
    ) -> JSONDict:
        """Change a subscription item's quantity as a person would in Stripe's Dashboard:
        same events as an API update (customer.subscription.updated with
        previous_attributes), no API request logged."""
        store = self.store
        with store.mutex:
            item = store.get(item_id, "subscription_item")
            sub = store.get(item["subscription"], "subscription")
        ctx = self._ctx()
        with store.object_lock(sub["id"]), store.mutex:
            update = {
                "items": [{"id": item_id, "quantity": str(quantity)}],
                "proration_behavior": proration_behavior,
            }
            subscriptions.update_subscription(ctx, sub, update)
            result = render(store, sub)
        ctx.flush()
        return result
