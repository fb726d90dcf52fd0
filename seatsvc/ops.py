"""The RQ dashboard at `/ops/rq`: ops see the queues and re-run failed jobs.

rq-dashboard is a Flask blueprint with no security of its own. Here it gets:
- HTTP basic auth (`OPS_USERNAME`/`OPS_PASSWORD`, compared in constant time);
  without a password the dashboard is not mounted at all (404, the API's error shape);
- protection against cross-site requests: every state-changing call (POST)
  must come from the dashboard's own pages (`Sec-Fetch-Site: same-origin`, or
  an `Origin`/`Referer` naming this host), else 403; its one state-changing
  GET (`/requeue/<queue>`) answers 405;
- the app's own Redis connection (embedded fakeredis included) and the JSON
  serializer the queues use (also where rq-dashboard forgets to pass one): it
  never unpickles (a pickle planted in Redis would run code in the web process),
  and a job it cannot read as JSON is answered `422 undecodable_job`, not a 500;
- no framing (`X-Frame-Options: DENY`, CSP `frame-ancestors 'none'`) on every
  response of the app, against clickjacking of the dashboard's buttons.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

import rq_dashboard
import rq_dashboard.web
from flask import Flask, Response, current_app, jsonify, request, send_from_directory
from rq import Queue, Worker, requeue_job
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job

from seatsvc.api.errors import error_response
from seatsvc.config import Config
from seatsvc.enqueue import SERIALIZER
from seatsvc.runtime import Runtime

PREFIX = "/ops/rq"
REALM = 'Basic realm="seatsvc ops", charset="UTF-8"'
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# rq-dashboard's routes that change something even when reached by GET.
_STATE_CHANGING_GETS = frozenset({"rq_dashboard.requeue_all"})


def credentials_ok(username: str, password: str, config: Config) -> bool:
    """Constant time: both comparisons always run, on bytes of any length."""
    expected = config.ops_password or ""
    user_ok = hmac.compare_digest(username.encode(), config.ops_username.encode())
    password_ok = hmac.compare_digest(password.encode(), expected.encode())
    return bool(expected) and user_ok and password_ok


def same_origin() -> bool:
    """The request comes from a page of this host (what a browser says about it)."""
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        return fetch_site == "same-origin"
    source = request.headers.get("Origin") or request.headers.get("Referer")
    if not source or source == "null":
        return False
    return urlsplit(source).netloc == request.host


def forbid_framing(app: Flask) -> None:
    """No page of this app may be shown in a frame (old and new browsers' ways to say it)."""

    @app.after_request
    def _no_frames(response: Response) -> Response:
        response.headers["X-Frame-Options"] = "DENY"
        policy = response.headers.get("Content-Security-Policy")
        if policy is None:
            response.headers["Content-Security-Policy"] = "frame-ancestors 'none'"
        elif "frame-ancestors" not in policy:
            response.headers["Content-Security-Policy"] = f"{policy}; frame-ancestors 'none'"
        return response


def register_ops(app: Flask, runtime: Runtime) -> None:
    """Mount the dashboard when `OPS_PASSWORD` is set; otherwise `/ops/rq` stays a 404."""
    forbid_framing(app)
    config = runtime.config
    if not config.ops_password:
        return
    _json_jobs_only()
    app.config.setdefault("RQ_DASHBOARD_POLL_INTERVAL", 2500)
    # Shown on the page; never the password (the dashboard masks it too).
    shown = config.redis_url or "redis://embedded"
    app.config["RQ_DASHBOARD_REDIS_URL"] = (shown,)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=PREFIX)

    def use_our_redis() -> Response | None:
        # Replaces rq-dashboard's own hook, which opens a new connection from the
        # URL on every request (and cannot reach the embedded Redis).
        if (request.view_args or {}).get("instance_number", 0) != 0:
            return error_response(404, "not_found", "no such Redis instance")
        current_app.redis_conn = runtime.redis  # type: ignore[attr-defined]
        return None

    app.before_request_funcs["rq_dashboard"] = [use_our_redis]
    _serialize_job_writes(app, runtime)
    _refuse_undecodable_jobs(app)

    # Its pages link the favicon through the app's own `static` endpoint, which this
    # JSON service does not have: serve it (only it) from the dashboard's files.
    def favicon(filename: str) -> Response:
        return send_from_directory(str(rq_dashboard.blueprint.static_folder), "favicon.ico")

    app.add_url_rule(PREFIX + "/app-static/<path:filename>", "static", favicon)

    @app.before_request
    def _guard_ops() -> Response | None:
        if request.path != PREFIX and not request.path.startswith(PREFIX + "/"):
            return None
        auth = request.authorization
        if (
            auth is None
            or auth.type != "basic"
            or not credentials_ok(auth.username or "", auth.password or "", config)
        ):
            refused = error_response(401, "unauthorized", "ops credentials are required")
            refused.headers["WWW-Authenticate"] = REALM
            return refused
        if request.endpoint in _STATE_CHANGING_GETS and request.method in _SAFE_METHODS:
            refused = error_response(405, "method_not_allowed", "use POST")
            refused.headers["Allow"] = "POST"
            return refused
        if request.method not in _SAFE_METHODS and not same_origin():
            return error_response(403, "forbidden", "cross-site request refused (same origin only)")
        return None


def _serialize_job_writes(app: Flask, runtime: Runtime) -> None:
    """rq-dashboard's requeue and delete views fetch jobs without a serializer.

    rq then reads our JSON job with pickle and, on requeue, saves its meta back
    pickled: the worker could no longer read the job. These replacements do
    the same with the queues' serializer.
    """

    def answer(body: dict[str, Any]) -> Response:
        response = jsonify(body)
        response.headers["Cache-Control"] = "no-store"
        return response

    def requeue_job_view(job_id: str) -> Response:
        requeue_job(job_id, connection=runtime.redis, serializer=SERIALIZER)
        return answer({"status": "OK"})

    def requeue_all(queue_name: str) -> Response:
        queue = Queue(queue_name, connection=runtime.redis, serializer=SERIALIZER)
        job_ids = queue.failed_job_registry.get_job_ids(cleanup=False)
        for job_id in job_ids:
            requeue_job(job_id, connection=runtime.redis, serializer=SERIALIZER)
        return answer({"status": "OK", "count": len(job_ids)})

    def delete_job_view(job_id: str) -> Response:
        if current_app.config.get("RQ_DASHBOARD_DISABLE_DELETE"):
            return answer({"status": "DISABLED"})
        try:
            Job.fetch(job_id, connection=runtime.redis, serializer=SERIALIZER).delete()
        except NoSuchJobError:
            return answer({"status": "ERROR"})
        return answer({"status": "OK"})

    for endpoint, view in (
        ("rq_dashboard.requeue_job_view", requeue_job_view),
        ("rq_dashboard.requeue_all", requeue_all),
        ("rq_dashboard.delete_job_view", delete_job_view),
    ):
        assert endpoint in app.view_functions, f"rq-dashboard has no {endpoint} any more"
        app.view_functions[endpoint] = view


class _JSONJob(Job):
    """`Job` whose `fetch` reads JSON whatever serializer the caller asked for (or forgot)."""

    @classmethod
    def fetch(cls, id: str, connection: Any = None, serializer: Any = None) -> Job:
        return Job.fetch(id, connection=connection, serializer=SERIALIZER)


class _JSONWorker(Worker):
    """`Worker.all` with the JSON serializer: a worker's current job is read with it."""

    @classmethod
    def all(cls, *args: Any, **kwargs: Any) -> list[Any]:
        kwargs["serializer"] = SERIALIZER
        return list(Worker.all(*args, **kwargs))


def _json_jobs_only() -> None:
    """Every name rq-dashboard's views read jobs through uses JSON, never pickle.

    `config.serializer` covers the views that pass it; the job page, "empty"
    (through its own delete function), requeue and the workers list call
    `Job.fetch`, `requeue_job` and `Worker.all` without one (rq's default: pickle).
    """
    web: Any = rq_dashboard.web
    for name in ("Job", "Worker", "requeue_job"):
        assert hasattr(web, name), f"rq-dashboard no longer uses rq_dashboard.web.{name}"
    web.config.serializer = SERIALIZER
    web.Job = _JSONJob
    web.Worker = _JSONWorker
    web.requeue_job = _json_requeue_job


def _json_requeue_job(job_id: str, connection: Any, serializer: Any = None) -> Any:
    return requeue_job(job_id, connection=connection, serializer=SERIALIZER)


# What reading a job that is not our JSON raises (rq wraps some, not all, of these).
_UNDECODABLE = (DeserializationError, UnicodeDecodeError, json.JSONDecodeError, TypeError)


def _refuse_undecodable_jobs(app: Flask) -> None:
    """A job the dashboard cannot read as JSON gets a plain 422 (a gone one 404), not a 500."""

    def guarded(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def run(*args: Any, **kwargs: Any) -> Any:
            try:
                return view(*args, **kwargs)
            except NoSuchJobError:
                return error_response(404, "not_found", "no such job")
            except _UNDECODABLE:
                return error_response(
                    422, "undecodable_job", "a job here is not JSON; it is not shown or run"
                )

        return run

    for endpoint, view in list(app.view_functions.items()):
        if endpoint.startswith("rq_dashboard."):
            app.view_functions[endpoint] = guarded(view)
