"""`/docs`: the OpenAPI document (`/openapi.json`) to read in a browser, with Swagger UI.

flask-swagger-ui ships Swagger UI's files, served from here: the page loads nothing
from anywhere else (no CDN; Swagger UI's online validator badge is off), and its
Content-Security-Policy holds it to this origin. No auth, like `/openapi.json`:
the document describes the API and holds no secrets.
"""

from __future__ import annotations

from flask import Blueprint, Flask, Response
from flask_swagger_ui import get_swaggerui_blueprint

PREFIX = "/docs"
# The page's own inline bootstrap script and styles, nothing from another origin.
POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'"
)


def register_docs(app: Flask) -> None:
    blueprint: Blueprint = get_swaggerui_blueprint(
        PREFIX,
        "/openapi.json",
        config={"app_name": "seatsvc API", "validatorUrl": None},
        blueprint_name="docs",
    )

    @blueprint.after_request
    def _same_origin_only(response: Response) -> Response:
        response.headers["Content-Security-Policy"] = POLICY
        return response

    app.register_blueprint(blueprint)
