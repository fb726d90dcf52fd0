"""One redaction for every place text leaves the process: logs, Sentry, `last_error`, job results.

Clinicians' addresses are personal data and tokens are credentials: neither may
reach a log line, a Sentry event, a row an operator reads or an RQ job's result.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# An address in any wrapping the API or an SMTP server may produce: `a@b.example`,
# `<a@b.example>`, IP literals (`x@[127.0.0.1]`), non-ASCII local parts and domains.
_EMAIL = re.compile(r"<?[^\s<>()\[\],;:\"@]+@(?:\[[^\]\s]*\]|[^\s<>()\[\],;:\"'@]+)>?")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
# Stripe secrets: sk_/rk_ API keys and whsec_ webhook signing secrets.
_STRIPE_SECRET = re.compile(r"\b(?:sk|rk|whsec)_[A-Za-z0-9_]+")
_TOKEN_PARAM = re.compile(
    r"(?i)((?:token|secret|password|api_key|apikey)\"?'?\s*[=:]\s*\"?'?)[^\s\"'&,;}]+"
)
# Invite tokens (`<invite id>.<HMAC>`, see seatsvc.services.invites) and bare digests.
_INVITE_TOKEN = re.compile(r"\b(?:[A-Za-z0-9_-]+\.)?[0-9a-fA-F]{64}\b")
_SENSITIVE_KEYS = re.compile(r"(?i)token|secret|password|passwd|authorization|api_?key|cookie")
EMAIL = "[email]"
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """`text` without email addresses, bearer tokens, invite tokens or Stripe secrets."""
    text = _EMAIL.sub(EMAIL, text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    text = _STRIPE_SECRET.sub(REDACTED, text)
    text = _TOKEN_PARAM.sub(lambda m: m.group(1) + REDACTED, text)
    return _INVITE_TOKEN.sub(REDACTED, text)


def scrub(value: Any, depth: int = 0) -> Any:
    """Redact every string inside `value`; values under sensitive keys go entirely."""
    if depth > 20:
        return value
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {
            key: REDACTED
            if isinstance(key, str) and _SENSITIVE_KEYS.search(key) and value[key]
            else scrub(value[key], depth + 1)
            for key in value
        }
    if isinstance(value, list | tuple):
        return type(value)(scrub(item, depth + 1) for item in value)
    return value
