"""A stateful Stripe API emulator that the official `stripe` SDK talks to over HTTP.

See README.md in this package for how to start it and the `/_emulator/` control API.
"""

from stripe_emulator.emulator import StripeEmulator

__all__ = ["StripeEmulator"]
