"""Jobs the ops tests enqueue (importable by name, as rq needs)."""

from __future__ import annotations

import logging

log = logging.getLogger("tests.test_ops.jobs")


def explode(email: str, token: str) -> None:
    """Fails with personal data in its arguments, its locals and its message."""
    secret = f"Bearer {token}"
    raise RuntimeError(f"could not reach {email} using {secret}")


def chatty(email: str) -> str:
    """Logs (its argument included) and succeeds."""
    log.info("working for %s", email)
    return "ok"


def tick() -> str:
    """Counts one (fake) webhook event where it runs: in a forked work horse, say."""
    from seatsvc import metrics

    metrics.WEBHOOK_EVENTS.labels(type="test.tick", result="processed").inc()
    return "ticked"
