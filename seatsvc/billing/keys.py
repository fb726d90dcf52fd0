"""Idempotency keys that name one intent exactly.

Stripe saves the first answer under a key (500s included) and refuses the key
with any other body (`idempotency_error`). So a key is derived from the whole
request body, plus what makes a new try a new request: the desired version and
the number of uncertain attempts so far. A re-run of the very same attempt
(a worker killed while its request was out) replays Stripe's saved answer; a
try after a 5xx, a lost answer or a replay is a new request under a new key.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_KEY_LENGTH = 255  # Stripe's limit
_DIGEST_CHARS = 32  # 128 bits of the body's SHA-256: no two bodies share a key


@dataclass(frozen=True)
class Intent:
    """Whose write this is and which try: the part of every key that is not the body."""

    agency_id: str
    version: int
    attempt: int

    def key(self, step: str, params: Mapping[str, Any]) -> str:
        """`seatsvc:<agency>:<step>:v<version>:a<attempt>:<digest of the body>`."""
        digest = body_digest(params)
        key = f"seatsvc:{self.agency_id}:{step}:v{self.version}:a{self.attempt}:{digest}"
        if len(key) > MAX_KEY_LENGTH:  # a very long agency id: the digest must survive
            head = hashlib.sha256(key.encode()).hexdigest()[:_DIGEST_CHARS]
            key = f"seatsvc:{head}:{digest}"
        return key


def body_digest(params: Mapping[str, Any]) -> str:
    """The request body in a canonical form (sorted keys, no spaces), hashed."""
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:_DIGEST_CHARS]
