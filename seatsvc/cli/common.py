"""What every command shares: the app's runtime, also installed for the jobs it runs."""

from __future__ import annotations

from seatsvc.api.context import runtime
from seatsvc.runtime import Runtime
from workers import context


def app_runtime() -> Runtime:
    """The app's runtime; jobs run in this process (`workers.*`) use the same one."""
    found = runtime()  # flask runs its commands inside the app context
    context.install(found)
    return found
