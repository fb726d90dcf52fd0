"""The seatsvc app plus one bare endpoint, the baseline of bench/seat_request.py.

`/bench/baseline` runs one trivial PostgreSQL transaction (`SELECT 1`) through
the app's own unit of work, so its cost is Flask + gunicorn + a pooled
connection + BEGIN/COMMIT: what every seatsvc request pays before doing any
work of its own. The route exists only here, never in `seatsvc/`.
"""

from __future__ import annotations

from flask import Response, jsonify
from sqlalchemy import text
from sqlalchemy.orm import Session

from seatsvc.app import create_app
from seatsvc.runtime import Runtime

app = create_app()


def _select_one(session: Session) -> int:
    value: int = session.execute(text("SELECT 1")).scalar_one()
    return value


@app.get("/bench/baseline")
def baseline() -> Response:
    """One transaction, no locks, no writes."""
    runtime: Runtime = app.extensions["seatsvc"]
    return jsonify({"value": runtime.db.run(_select_one)})
