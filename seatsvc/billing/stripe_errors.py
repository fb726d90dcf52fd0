"""Stripe's errors sorted into the three kinds a billing job must tell apart."""

from __future__ import annotations

from typing import Any

import stripe


class StripeTransient(Exception):
    """Stripe is down, slow, rate limiting or locked: try again later."""


class StripePermanent(Exception):
    """Stripe refused the request itself: retrying the same call cannot help."""


class PaymentDeclined(Exception):
    """The card was declined: the admins must act; never retried in a loop."""


def sorted_call(request: Any) -> Any:
    """Run one Stripe call; its errors sorted into the three kinds a job tells apart."""
    try:
        return request()
    except stripe.CardError as error:
        raise PaymentDeclined(_describe(error)) from error
    except (stripe.RateLimitError, stripe.APIConnectionError) as error:
        raise StripeTransient(_describe(error)) from error
    except stripe.APIError as error:
        raise StripeTransient(_describe(error)) from error
    except stripe.StripeError as error:
        if (error.http_status or 0) >= 500 or error.http_status == 409:
            raise StripeTransient(_describe(error)) from error
        raise StripePermanent(_describe(error)) from error


def _describe(error: stripe.StripeError) -> str:
    """A readable reason with no request body (it may carry personal data)."""
    code = getattr(error, "code", None) or type(error).__name__
    return f"stripe {error.http_status or '-'} {code}: {error.user_message or str(error)[:200]}"
