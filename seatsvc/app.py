"""The Flask app factory."""

from __future__ import annotations

from flask import Flask

from seatsvc.api import agencies, health, members
from seatsvc.api.auth import register_auth
from seatsvc.api.errors import register_error_handlers
from seatsvc.api.routing import IdConverter, SeatTypeConverter
from seatsvc.config import Config
from seatsvc.docs import register_docs
from seatsvc.metrics import bp as metrics_bp
from seatsvc.observability import bind_request_id, configure_logging, init_sentry
from seatsvc.openapi import bp as openapi_bp
from seatsvc.ops import register_ops
from seatsvc.runtime import Runtime


def create_app(config: Config | None = None, runtime: Runtime | None = None) -> Flask:
    """Build the app. `config` defaults to the environment; `runtime` lets tests share one."""
    config = config or (runtime.config if runtime else Config.from_env())
    config.validate()
    app = Flask(__name__, static_folder=None)
    app.config.update(
        SEATSVC=config,
        MAX_CONTENT_LENGTH=config.max_content_length,
        TESTING=config.testing,
        JSON_SORT_KEYS=False,
    )
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["seat_type"] = SeatTypeConverter
    app.extensions["seatsvc"] = runtime = runtime or Runtime.build(config)

    configure_logging()
    init_sentry(config.sentry_dsn)
    bind_request_id(app)
    register_auth(app)
    register_error_handlers(app)
    for blueprint in (health.bp, agencies.bp, members.bp, openapi_bp, metrics_bp):
        app.register_blueprint(blueprint)
    register_docs(app)
    register_ops(app, runtime)

    from webhooks.blueprint import bp as webhooks_bp  # webhooks import workers: late

    app.register_blueprint(webhooks_bp)
    from seatsvc.cli import register_cli

    register_cli(app)
    return app
