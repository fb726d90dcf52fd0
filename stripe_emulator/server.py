"""The WSGI application: auth, failure injection, latency, idempotency, per-object locks,
the request log, then the Stripe route handlers."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
import traceback
from typing import TYPE_CHECKING, Any, NoReturn

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from stripe_emulator import (
    errors,
    faults,
    pages,
    routes_billing,
    routes_core,
    routes_payments,
    validation,
)
from stripe_emulator.api import Route
from stripe_emulator.context import Ctx
from stripe_emulator.faults import Hit
from stripe_emulator.shapes_billing import API_VERSION
from stripe_emulator.store import IdempotencyRecord
from stripe_emulator.wire import JSONDict, new_id, parse_form

if TYPE_CHECKING:
    from stripe_emulator.emulator import StripeEmulator

log = logging.getLogger("stripe_emulator")

ROUTES: list[Route] = [*routes_core.ROUTES, *routes_billing.ROUTES, *routes_payments.ROUTES]
_URL_MAP = Map(
    [Rule(r.path, endpoint=i, methods=[r.method]) for i, r in enumerate(ROUTES)],
    strict_slashes=False,
)


class _Drop(ConnectionResetError):
    """Raised to make werkzeug drop the connection without an answer."""


class _LoseAnswer(Exception):
    """Raised inside the dispatch to have the connection dropped after `seconds`."""

    def __init__(self, seconds: float) -> None:
        super().__init__(seconds)
        self.seconds = seconds


def _error_headers(failure: errors.StripeError, saved: bool) -> dict[str, str]:
    # stripe-python expects a saved 5xx to say Stripe-Should-Retry: false, "since our
    # idempotency framework would typically replay it anyway" (_http_client._should_retry).
    if saved and failure.status >= 500:
        return {**failure.headers, "Stripe-Should-Retry": "false"}
    return dict(failure.headers)


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    resp = Response(json.dumps(body, indent=2), status=status, mimetype="application/json")
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


class StripeApp:
    def __init__(self, emulator: StripeEmulator) -> None:
        self.emulator = emulator
        self.store = emulator.store

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        if request.path.startswith("/_emulator"):
            response = self.emulator.control.handle(request)
        elif request.path.startswith(pages.PREFIXES):
            response = pages.handle(self.emulator, request)  # Checkout / portal pages
        else:
            response = self.handle_api(request, environ)
        return response(environ, start_response)

    # -- the Stripe API --------------------------------------------------------------
    def _params(self, request: Request) -> JSONDict:
        raw = request.query_string.decode()
        params = parse_form(raw) if raw else {}
        if request.method == "POST":
            params.update(parse_form(request.get_data(as_text=True)))
        return params

    def _authenticate(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        key = ""
        if header.startswith("Bearer "):
            key = header[len("Bearer ") :].strip()
        elif request.authorization and request.authorization.username:
            key = request.authorization.username  # curl -u sk_test_...:
        if not key:
            raise errors.auth_missing()
        wanted = self.emulator.api_key
        if (wanted and key != wanted) or (
            not wanted and not key.startswith(("sk_test_", "rk_test_"))
        ):
            raise errors.auth_invalid(key)
        return key

    def handle_api(self, request: Request, environ: dict[str, Any]) -> Response:
        store = self.store
        # Checkout and portal URLs point at this server, as the caller reached it.
        store.public_url = request.host_url.rstrip("/")
        request_id = new_id("req", 14)
        started = time.monotonic()
        idem_key = request.headers.get("Idempotency-Key")
        params = self._params(request)
        entry: JSONDict = {
            "id": request_id,
            "method": request.method,
            "path": request.path,
            "params": params,
            "idempotency_key": idem_key,
            "status": None,
            "time": store.clock.now(),
            "real_time": time.time(),
            "replayed": False,
            "injected": None,
        }
        with store.mutex:
            store.request_log.append(entry)
            del store.request_log[: -store.config.request_log_limit]
        headers = {
            "Request-Id": request_id,
            "Stripe-Version": request.headers.get("Stripe-Version", API_VERSION),
        }
        if idem_key:
            headers["Idempotency-Key"] = idem_key
        try:
            if store.config.latency > 0:
                time.sleep(store.config.latency)
            status, body, extra = self._dispatch(request, params, request_id, idem_key, entry)
            headers.update(extra)
        except errors.StripeError as exc:
            status, body = exc.status, exc.body(request_id)
            headers.update(exc.headers)
        except _LoseAnswer as lost:
            self._drop(environ, entry, lost.seconds)
        except Exception:
            log.error(
                "emulator failure on %s %s\n%s",
                request.method,
                request.path,
                traceback.format_exc(),
            )
            failure = errors.api_error()
            status, body = failure.status, failure.body(request_id)
        entry["status"] = status
        entry["duration_ms"] = round((time.monotonic() - started) * 1000, 1)
        return json_response(status, body, headers)

    def _drop(self, environ: dict[str, Any], entry: JSONDict, seconds: float) -> NoReturn:
        """Hold the request, then close the socket: the client sees a network error."""
        time.sleep(seconds)
        entry["status"] = "dropped"
        sock = environ.get("werkzeug.socket")
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        raise _Drop("emulator dropped the connection (injected failure)")

    def _fail_unsaved(self, hit: Hit) -> None:
        """Failures that never reach an endpoint: nothing applied, nothing saved."""
        if hit.mode == faults.TIMEOUT:
            wait = self.store.config.timeout_seconds if hit.seconds is None else hit.seconds
            raise _LoseAnswer(wait)
        if hit.mode == faults.LOCK_TIMEOUT:
            raise errors.lock_timeout()
        raise errors.rate_limited(
            "Request rate limit exceeded. Learn more about rate limits here "
            "https://stripe.com/docs/rate-limits."
        )

    def _run(
        self,
        route: Route,
        params: JSONDict,
        kwargs: Any,
        request_id: str,
        idem_key: str | None,
        hit: Hit | None,
        saved: bool,
    ) -> tuple[int, JSONDict, dict[str, str]]:
        """The endpoint, with an injected failure around it when one hit this call."""
        if hit is not None and not hit.runs_endpoint:
            if hit.mode != faults.ERROR_BEFORE:
                self._fail_unsaved(hit)
            failure = errors.injected(hit.status)
            return failure.status, failure.body(request_id), _error_headers(failure, saved)
        status, body, extra = self._execute(route, params, kwargs, request_id, idem_key)
        if hit is not None and hit.mode == faults.ERROR_AFTER:
            failure = errors.injected(hit.status)  # the write above stays applied
            return failure.status, failure.body(request_id), _error_headers(failure, saved)
        return status, body, extra

    def _dispatch(
        self,
        request: Request,
        params: JSONDict,
        request_id: str,
        idem_key: str | None,
        entry: JSONDict,
    ) -> tuple[int, JSONDict, dict[str, str]]:
        store = self.store
        api_key = self._authenticate(request)
        adapter = _URL_MAP.bind("stripe", "/")
        try:
            endpoint, kwargs = adapter.match(request.path, method=request.method)
        except (NotFound, MethodNotAllowed):
            raise errors.not_found_url(request.method, request.path) from None
        route = ROUTES[int(endpoint)]
        validation.validate(params, route.params)
        use_idem = bool(idem_key) and request.method == "POST"
        if idem_key and len(idem_key) > 255:
            raise errors.invalid_request(
                "Idempotency-Key must be at most 255 characters long.", param="Idempotency-Key"
            )
        scoped = f"{api_key}:{idem_key}"
        # Stripe "compares incoming parameters to those of the original request"; the
        # endpoint is checked apart, with its own message.
        fingerprint = (request.method, request.path, json.dumps(params, sort_keys=True))
        if use_idem:
            with store.mutex:
                store.prune_idempotency()  # keys live idempotency_ttl of emulated time
                record = store.idempotency.get(scoped)
                if record is not None:
                    if record.fingerprint[:2] != fingerprint[:2]:
                        raise errors.idempotency_endpoint_mismatch(
                            str(idem_key), request.path, record.fingerprint[1]
                        )
                    if record.fingerprint != fingerprint:
                        raise errors.idempotency_mismatch(str(idem_key))
                    entry["replayed"] = True
                    replay = {"Idempotent-Replayed": "true", "Original-Request": record.request_id}
                    return record.status, json.loads(record.body), {**record.headers, **replay}
                if scoped in store.inflight_keys:
                    raise errors.idempotency_in_use(str(idem_key))
                store.inflight_keys.add(scoped)
        # Injected failures hit calls that passed auth and validation and are not replays.
        hit = store.take_failure(request.method, request.path)
        if hit is not None:
            entry["injected"] = hit.mode
        try:
            status, body, extra = self._run(
                route, params, kwargs, request_id, idem_key, hit, use_idem
            )
        finally:
            if use_idem:
                with store.mutex:
                    store.inflight_keys.discard(scoped)
        if use_idem:
            with store.mutex:
                store.idempotency[scoped] = IdempotencyRecord(
                    fingerprint,
                    status,
                    json.dumps(body),
                    dict(extra),
                    store.clock.now_float(),
                    request_id,
                )
        if hit is not None and hit.mode == faults.LOST_ANSWER:
            raise _LoseAnswer(hit.seconds or 0.0)  # applied and saved; the answer is lost
        return status, body, extra

    def _execute(
        self,
        route: Route,
        params: JSONDict,
        kwargs: Any,
        request_id: str,
        idem_key: str | None,
    ) -> tuple[int, JSONDict, dict[str, str]]:
        store = self.store
        ctx = Ctx(store, self.emulator.bus, request_id, idem_key)
        with store.mutex:
            lock_key = route.lock(store, params, kwargs) if route.lock else None
        try:
            with store.object_lock(lock_key), store.mutex:
                body = route.handler(ctx, params, **kwargs)
        except errors.StripeError as exc:
            ctx.flush()
            if not exc.saved_by_idempotency:
                raise
            headers = dict(exc.headers)
            return exc.status, exc.body(request_id), headers
        ctx.flush()
        return 200, body, {}
