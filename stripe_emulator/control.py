"""The test-control API under `/_emulator/` (not Stripe's): JSON in, JSON out, no auth."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from stripe_emulator import errors

if TYPE_CHECKING:
    from stripe_emulator.emulator import StripeEmulator

Body = dict[str, Any]


def _json(status: int, body: Any) -> Response:
    return Response(json.dumps(body, indent=2), status=status, mimetype="application/json")


class ControlAPI:
    def __init__(self, emulator: StripeEmulator) -> None:
        self.emu = emulator
        routes: dict[str, tuple[str, Callable[..., Any]]] = {
            "reset": ("POST", self.reset),
            "state": ("GET", self.state),
            "config": ("GET,POST", self.config),
            "latency": ("POST", self.latency),
            "clock": ("GET", self.clock),
            "clock/advance": ("POST", self.advance),
            "clock/freeze": ("POST", self.freeze),
            "failures": ("GET,POST,DELETE", self.failures),
            "requests": ("GET,DELETE", self.requests),
            "webhooks/mode": ("GET,POST", self.webhook_mode),
            "webhooks/endpoints": ("POST", self.add_endpoint),
            "webhooks/resend": ("POST", self.resend),
            "webhooks/deliveries": ("GET,DELETE", self.deliveries),
            "webhooks/wait": ("POST", self.wait),
            "dashboard/subscription_items/<item_id>": ("POST", self.dashboard_quantity),
            "objects/<obj_id>": ("GET", self.get_object),
            "checkout/sessions/<cs_id>/complete": ("POST", self.complete_checkout),
        }
        self._handlers = {name: fn for name, (_, fn) in routes.items()}
        self._map = Map(
            [
                Rule(f"/_emulator/{name}", endpoint=name, methods=methods.split(","))
                for name, (methods, _) in routes.items()
            ]
        )

    def handle(self, request: Request) -> Response:
        try:
            name, kwargs = self._map.bind("emulator", "/").match(
                request.path, method=request.method
            )
        except (NotFound, MethodNotAllowed):
            return _json(404, {"error": f"no control route {request.method} {request.path}"})
        try:
            body = request.get_json(silent=True) or {}
            if not isinstance(body, dict):
                raise ValueError("body must be a JSON object")
            result = self._handlers[str(name)](request, body, **kwargs)
        except errors.StripeError as exc:
            return _json(exc.status, exc.body())
        except (ValueError, TypeError, KeyError) as exc:
            return _json(400, {"error": str(exc)})
        return _json(200, result)

    # -- state and knobs -------------------------------------------------------------
    def reset(self, request: Request, body: Body) -> Body:
        self.emu.reset()
        return {"reset": True, "now": self.emu.now()}

    def state(self, request: Request, body: Body) -> Body:
        store = self.emu.store
        with store.mutex:
            counts: dict[str, int] = {}
            for obj in store.objects.values():
                if not obj.get("_deleted"):
                    counts[obj["object"]] = counts.get(obj["object"], 0) + 1
        return {
            "now": self.emu.now(),
            "frozen": self.emu.clock.frozen,
            "counts": counts,
            "config": store.config.as_dict(),
            "webhooks": vars(self.emu.dispatcher.mode),
            "pending_deliveries": self.emu.dispatcher.pending(),
        }

    def config(self, request: Request, body: Body) -> Body:
        return self.emu.configure(**body)

    def latency(self, request: Request, body: Body) -> Body:
        settings = {}
        if "seconds" in body:
            settings["latency"] = float(body["seconds"])
        if "write_seconds" in body:
            settings["write_latency"] = float(body["write_seconds"])
        return self.emu.configure(**settings)

    # -- clock -----------------------------------------------------------------------
    def clock(self, request: Request, body: Body) -> Body:
        return {"now": self.emu.now(), "frozen": self.emu.clock.frozen}

    def advance(self, request: Request, body: Body) -> Body:
        if "to" not in body and "seconds" not in body:
            raise ValueError('give {"seconds": N} or {"to": unix_ts}')
        now = self.emu.advance(seconds=body.get("seconds"), to=body.get("to"))
        return {"now": now, "frozen": self.emu.clock.frozen}

    def freeze(self, request: Request, body: Body) -> Body:
        now = self.emu.freeze_clock(bool(body.get("frozen", True)))
        return {"now": now, "frozen": self.emu.clock.frozen}

    # -- failures and the request log -------------------------------------------------
    def failures(self, request: Request, body: Body) -> Any:
        if request.method == "DELETE":
            self.emu.clear_failures()
        elif request.method == "POST":
            status = body.get("status", 500)
            if status not in ("timeout",) and not str(status).isdigit():
                raise ValueError('status must be an HTTP code or "timeout"')
            known = {
                "status", "count", "path_prefix", "path", "method", "execute", "seconds",
                "mode", "probability", "for_seconds", "seed",
            }  # fmt: skip
            unknown = set(body) - known
            if unknown:
                raise ValueError(f"unknown failure field(s) {sorted(unknown)}")
            count = body.get("count")
            for_seconds = body.get("for_seconds")
            self.emu.fail_next(
                status=status,
                count=None if count is None else int(count),
                path_prefix=str(body.get("path_prefix", "")),
                method=str(body.get("method", "")),
                execute=bool(body.get("execute", False)),
                seconds=body.get("seconds"),
                mode=body.get("mode"),
                path=str(body.get("path", "")),
                probability=float(body.get("probability", 1.0)),
                for_seconds=None if for_seconds is None else float(for_seconds),
                seed=body.get("seed"),
            )
        return self.emu.failures()

    def requests(self, request: Request, body: Body) -> Any:
        if request.method == "DELETE":
            self.emu.clear_requests()
            return {"cleared": True}
        return self.emu.requests(
            request.args.get("path_prefix", ""), request.args.get("method", "")
        )

    # -- webhooks --------------------------------------------------------------------
    def webhook_mode(self, request: Request, body: Body) -> Body:
        return self.emu.webhook_mode(**body)

    def add_endpoint(self, request: Request, body: Body) -> Body:
        if not body.get("url"):
            raise ValueError("url is required")
        return self.emu.add_webhook_endpoint(
            str(body["url"]), body.get("secret"), body.get("enabled_events")
        )

    def resend(self, request: Request, body: Body) -> Body:
        count = self.emu.resend_events(body.get("since"), body.get("types"))
        return {"resent": count}

    def deliveries(self, request: Request, body: Body) -> Any:
        if request.method == "DELETE":
            self.emu.dispatcher.log.clear()
            return {"cleared": True}
        return self.emu.deliveries()

    def wait(self, request: Request, body: Body) -> Body:
        return {"idle": self.emu.wait_for_webhooks(float(body.get("timeout", 10)))}

    # -- dashboard and objects -------------------------------------------------------
    def dashboard_quantity(self, request: Request, body: Body, item_id: str) -> Body:
        return self.emu.dashboard_set_quantity(
            item_id,
            int(body["quantity"]),
            str(body.get("proration_behavior", "create_prorations")),
        )

    def complete_checkout(self, request: Request, body: Body, cs_id: str) -> Any:
        """The customer saved a test card (`card`, default `pm_card_visa`) on the page."""
        return self.emu.complete_checkout(cs_id, str(body.get("card") or "pm_card_visa"))

    def get_object(self, request: Request, body: Body, obj_id: str) -> Any:
        found = self.emu.get(obj_id)
        if found is None:
            raise errors.resource_missing("object", obj_id)
        return found
