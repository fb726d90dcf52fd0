"""seatsvc: per-seat subscription billing."""

from seatsvc.app import create_app

__all__ = ["create_app"]
