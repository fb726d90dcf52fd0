"""Configuration from environment variables, read once into an immutable object.

Every knob has a safe embedded default for a developer machine (SQLite, an
embedded Redis, the local Stripe emulator, the local SMTP sink); production sets
them all through the environment (see `.env.example`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

DEFAULT_DATABASE_URL = "sqlite:///instance/seatsvc.sqlite3"


def _split_csv(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


@dataclass(frozen=True)
class Config:
    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    api_tokens: tuple[str, ...] = ()
    secret_key: str = ""
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None
    stripe_webhook_secrets: tuple[str, ...] = ()
    stripe_price_base: str | None = None
    stripe_price_voice: str | None = None
    smtp_url: str = "smtp://127.0.0.1:8025"
    mail_from: str = "seatsvc <no-reply@seatsvc.local>"
    invite_accept_url: str = "http://localhost:3000/invites/accept"
    invite_ttl_hours: int = 72
    ops_username: str = "ops"
    ops_password: str | None = None
    sentry_dsn: str | None = None
    port: int = 8000
    max_content_length: int = 64 * 1024
    # Billing: how prorations are invoiced (`daily` or `immediate`, see README), and
    # the debounce that turns a burst of seat changes into one Stripe update.
    billing_invoice_mode: str = "daily"
    billing_quiet_ms: int = 500
    billing_max_wait_ms: int = 5_000
    # The agency lock's lease, renewed while a sync runs: how long a killed worker's
    # lock can hold the agency's next sync back.
    billing_lock_seconds: int = 20
    # How often the scheduler's sweeps re-enqueue outbox work Redis lost or never got.
    requeue_seconds: int = 60
    testing: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Config:
        env = os.environ if environ is None else environ

        def opt(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        return cls(
            database_url=opt("DATABASE_URL") or DEFAULT_DATABASE_URL,
            redis_url=opt("REDIS_URL"),
            api_tokens=_split_csv(env.get("SEATSVC_API_TOKENS", "")),
            secret_key=env.get("SEATSVC_SECRET_KEY", ""),
            stripe_api_key=opt("STRIPE_API_KEY"),
            stripe_api_base=opt("STRIPE_API_BASE"),
            stripe_webhook_secrets=_split_csv(env.get("STRIPE_WEBHOOK_SECRET", "")),
            stripe_price_base=opt("STRIPE_PRICE_BASE"),
            stripe_price_voice=opt("STRIPE_PRICE_VOICE"),
            smtp_url=opt("SMTP_URL") or cls.smtp_url,
            mail_from=opt("MAIL_FROM") or cls.mail_from,
            invite_accept_url=opt("INVITE_ACCEPT_URL") or cls.invite_accept_url,
            invite_ttl_hours=int(opt("INVITE_TTL_HOURS") or cls.invite_ttl_hours),
            ops_username=opt("OPS_USERNAME") or cls.ops_username,
            ops_password=opt("OPS_PASSWORD"),
            sentry_dsn=opt("SENTRY_DSN"),
            port=int(opt("PORT") or cls.port),
            max_content_length=int(opt("MAX_CONTENT_LENGTH") or cls.max_content_length),
            billing_invoice_mode=opt("BILLING_INVOICE_MODE") or cls.billing_invoice_mode,
            billing_quiet_ms=int(opt("BILLING_QUIET_MS") or cls.billing_quiet_ms),
            billing_max_wait_ms=int(opt("BILLING_MAX_WAIT_MS") or cls.billing_max_wait_ms),
            billing_lock_seconds=int(opt("BILLING_LOCK_SECONDS") or cls.billing_lock_seconds),
            requeue_seconds=int(opt("REQUEUE_SECONDS") or cls.requeue_seconds),
        )

    def with_overrides(self, **changes: Any) -> Config:
        return replace(self, **changes)

    def validate(self) -> None:
        """Refuse to start without the secrets that protect money and people."""
        if not self.api_tokens:
            raise RuntimeError("SEATSVC_API_TOKENS is empty: every /v1 call would be refused")
        if self.billing_invoice_mode not in ("daily", "immediate"):
            raise RuntimeError("BILLING_INVOICE_MODE must be 'daily' or 'immediate'")
        if len(self.secret_key) < 16:
            raise RuntimeError("SEATSVC_SECRET_KEY must be set (at least 16 characters)")
