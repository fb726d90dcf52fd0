"""Logs as JSON lines (structlog), Sentry, and the scrubber both of them share.

- Logs: one JSON object per line on stderr, stdlib `logging` included (gunicorn's,
  rq's, ours), with the request id bound from `X-Request-Id` (or a fresh one) and
  carried into the jobs a request causes (`job.meta["request_id"]`). Every string
  passes through `redact`: no email address, bearer token, invite token or Stripe
  key reaches a log line.
- Sentry: on when `SENTRY_DSN` is set, with the Flask and RQ integrations,
  `send_default_pii` off, and `before_send`/`before_breadcrumb` hooks that run the
  same redaction over the whole event (messages, exception values, stack locals,
  request data, breadcrumbs, the RQ job's arguments, where only numbers and short
  ids survive); stack locals are not sent at all.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from collections.abc import Mapping, MutableMapping
from typing import Any, TextIO

import structlog
from flask import Flask, Response, g, request

from seatsvc.redaction import REDACTED, scrub

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


# ---- logs -----------------------------------------------------------------------------


def _redact_event(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    scrubbed: dict[str, Any] = scrub(event)
    return scrubbed


_SHARED: list[Any] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _json_formatter() -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _redact_event,
            structlog.processors.JSONRenderer(),
        ],
    )


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's `logconfig_dict`: its error and access logs as JSON lines too."""
    stream = {"class": "logging.StreamHandler", "formatter": "json"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": _json_formatter}},
        "handlers": {
            "console": {**stream, "stream": "ext://sys.stdout"},
            "error_console": {**stream, "stream": "ext://sys.stderr"},
        },
        # The app adds its own root handler (configure_logging) in each worker.
        "root": {"level": "INFO", "handlers": []},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> None:
    """JSON lines on stderr (or `stream`) for structlog loggers and the stdlib alike.

    Idempotent: a second call replaces the handler the first one installed.
    """
    stream = stream or sys.stderr
    structlog.configure(
        processors=[
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = _json_formatter()
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_seatsvc", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler._seatsvc = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    # rq installs its own handlers unless one exists: let ours (the root's) do the writing.
    # gunicorn's loggers are configured by seatsvc.gunicorn_conf (the Procfile's web).
    for name in ("rq.worker", "rq.scheduler", "rq.cron"):
        named = logging.getLogger(name)
        named.handlers.clear()
        named.propagate = True


def current_request_id() -> str | None:
    found = structlog.contextvars.get_contextvars().get("request_id")
    return str(found) if found else None


def job_meta() -> dict[str, Any]:
    """What a job enqueued now carries from its cause: the request id, if there is one."""
    request_id = current_request_id()
    return {"request_id": request_id} if request_id else {}


def bind_request_id(app: Flask) -> None:
    """`X-Request-Id` in (or a fresh one), bound to every log line, echoed in the response."""

    @app.before_request
    def _bind() -> None:
        presented = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = presented if _REQUEST_ID.fullmatch(presented) else uuid.uuid4().hex
        g.request_id = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)

    @app.after_request
    def _echo(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    @app.teardown_request
    def _unbind(_error: BaseException | None) -> None:
        structlog.contextvars.clear_contextvars()


# ---- Sentry ---------------------------------------------------------------------------


# In job arguments a token has no telltale prefix: keep numbers and short ids only.
_SAFE_ARGUMENT = re.compile(r"[A-Za-z0-9_.:-]{1,40}")
_OPAQUE = re.compile(r"[A-Za-z0-9]{20,}|(?i:^(?:tok|token|key|secret|pass)[_-])")


def scrub_job_argument(value: Any) -> Any:
    """A job argument as Sentry may see it: ids and numbers, nothing that could be a secret."""
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str) and _SAFE_ARGUMENT.fullmatch(value) and not _OPAQUE.search(value):
        return value
    return REDACTED


def _scrub_rq_job(event: dict[str, Any]) -> None:
    job = (event.get("extra") or {}).get("rq-job")
    if not isinstance(job, dict):
        return
    # The SDK itself shows them as "[Filtered]" without send_default_pii; if not, filter here.
    args, kwargs = job.get("args"), job.get("kwargs")
    shown: list[str] = []
    if isinstance(args, list | tuple):
        job["args"] = [scrub_job_argument(arg) for arg in args]
        shown += [repr(arg) for arg in job["args"]]
    if isinstance(kwargs, Mapping):
        job["kwargs"] = {key: scrub_job_argument(arg) for key, arg in kwargs.items()}
        shown += [f"{key}={arg!r}" for key, arg in job["kwargs"].items()]
    # rq's description is the call with its arguments: rebuilt from what may be shown.
    job["description"] = f"{job.get('func')}({', '.join(shown) or REDACTED})"


def before_send(event: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any] | None:
    try:
        _scrub_rq_job(event)
        scrubbed: dict[str, Any] = scrub(event)
    except Exception:  # never let an unscrubbed event through
        logging.getLogger(__name__).warning("Sentry event dropped: could not scrub it")
        return None
    return scrubbed


def before_breadcrumb(crumb: dict[str, Any], _hint: dict[str, Any]) -> dict[str, Any]:
    scrubbed: dict[str, Any] = scrub(crumb)
    return scrubbed


def init_sentry(dsn: str | None, transport: Any = None, **options: Any) -> bool:
    """Start the Sentry SDK when a DSN is configured; returns whether it did."""
    if not dsn:
        return False
    # Lazy: the SDK and its integrations load only when a DSN is configured.
    import sentry_sdk  # noqa: PLC0415
    from sentry_sdk.integrations.flask import FlaskIntegration  # noqa: PLC0415
    from sentry_sdk.integrations.rq import RqIntegration  # noqa: PLC0415

    sentry_sdk.init(
        dsn=dsn,
        integrations=[FlaskIntegration(), RqIntegration()],
        send_default_pii=False,
        # Stack locals hold whatever a frame had (addresses, tokens, job arguments).
        include_local_variables=False,
        before_send=before_send,  # type: ignore[arg-type]
        before_breadcrumb=before_breadcrumb,
        transport=transport,
        **options,
    )
    return True
