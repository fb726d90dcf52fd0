"""The Runtime and Stripe gateway a job runs with: no request or app context, one per process.

The worker entry point (`workers.run`) installs a runtime built from the
environment before it forks; tests install theirs. A job that finds none builds
it lazily from the environment, so `rq worker` started by hand works too. The
gateway (and with it the resolved Stripe prices) is made once per runtime; a
forking worker makes it before its first fork (`prepare_gateway`), since one
made inside a work horse dies with the horse and the next job would pay
`prices.list` again.
"""

from __future__ import annotations

import logging
import threading

from dotenv import load_dotenv

from seatsvc.billing.gateway import StripeGateway, StripePermanent, StripeTransient
from seatsvc.config import Config
from seatsvc.enqueue import build_runtime
from seatsvc.runtime import Runtime

log = logging.getLogger(__name__)
_lock = threading.Lock()
_current: list[Runtime] = []
_gateways: dict[int, StripeGateway] = {}


def install(runtime: Runtime | None) -> None:
    """Use `runtime` for jobs in this process (None: forget it)."""
    with _lock:
        _current.clear()
        if runtime is not None:
            _current.append(runtime)


def runtime() -> Runtime:
    with _lock:
        if not _current:
            load_dotenv()
            _current.append(build_runtime(Config.from_env()))
        return _current[0]


def gateway(rt: Runtime) -> StripeGateway:
    """One gateway per runtime: prices are resolved once, not per job."""
    with _lock:
        found = _gateways.get(id(rt))
        if found is None:
            found = _gateways[id(rt)] = StripeGateway.from_config(rt.config)
        return found


def prepare_gateway(rt: Runtime) -> None:
    """Resolve the Stripe prices now, in the worker process, for every horse it forks.

    Best effort: with Stripe unreachable at start the worker still runs, and each job
    resolves the prices itself until the worker restarts.
    """
    try:
        prepared = gateway(rt)
    except (StripeTransient, StripePermanent) as error:
        log.warning("Stripe prices not resolved at start (each job will try): %s", error)
        return
    prepared.close_connections()  # horses open their own: no socket shared across a fork


def install_gateway(rt: Runtime, stripe_gateway: StripeGateway | None) -> None:
    with _lock:
        if stripe_gateway is None:
            _gateways.pop(id(rt), None)
        else:
            _gateways[id(rt)] = stripe_gateway
