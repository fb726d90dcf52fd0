"""The Flask app factory: the composition root, the one place that wires everything."""

from __future__ import annotations

from flask import Flask

from seatsvc.api import agencies, health, members, payments
from seatsvc.api import metrics as metrics_view
from seatsvc.api.auth import register_auth
from seatsvc.api.errors import register_error_handlers
from seatsvc.api.routing import IdConverter, SeatTypeConverter, register_body_limit
from seatsvc.cli import register_cli
from seatsvc.config import Config
from seatsvc.docs import register_docs
from seatsvc.enqueue import build_runtime
from seatsvc.observability import bind_request_id, configure_logging, init_sentry
from seatsvc.openapi import bp as openapi_bp
from seatsvc.ops import register_ops
from seatsvc.runtime import Runtime
from webhooks.blueprint import bp as webhooks_bp


def create_app(config: Config | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the app. `config` defaults to the environment; `runtime` lets tests share one
    (its config is then the app's: one home for configuration)."""
    if runtime is not None and config is not None and config is not runtime.config:
        raise ValueError("pass either a config or a runtime (which holds its config)")
    config = config or (runtime.config if runtime else Config.from_env())
    config.validate()
    app = Flask(__name__, static_folder=None)
    app.config.update(
        MAX_CONTENT_LENGTH=config.max_content_length,
        TESTING=config.testing,
        JSON_SORT_KEYS=False,
    )
    # No redirects from routing (`/v1//agencies` or a missing trailing slash would get
    # werkzeug's 308 with an HTML body): an unknown path is a plain JSON 404.
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["seat_type"] = SeatTypeConverter
    app.extensions["seatsvc"] = runtime = runtime or build_runtime(config)

    configure_logging()
    init_sentry(config.sentry_dsn)
    bind_request_id(app)
    register_body_limit(app)
    register_auth(app)
    register_error_handlers(app)
    for blueprint in (
        health.bp,
        agencies.bp,
        members.bp,
        payments.bp,
        openapi_bp,
        metrics_view.bp,
        webhooks_bp,
    ):
        app.register_blueprint(blueprint)
    register_docs(app)
    register_ops(app, runtime)
    register_cli(app)
    return app
