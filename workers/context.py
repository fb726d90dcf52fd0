"""The Runtime a job runs with: no request or app context, one per worker process.

The worker entry point (`workers.run`) installs one built from the environment
before it forks; tests install theirs. A job that finds none builds it lazily
from the environment, so `rq worker` started by hand works too.
"""

from __future__ import annotations

import threading

from seatsvc.config import Config
from seatsvc.runtime import Runtime

_lock = threading.Lock()
_current: list[Runtime] = []


def install(runtime: Runtime | None) -> None:
    """Use `runtime` for jobs in this process (None: forget it)."""
    with _lock:
        _current.clear()
        if runtime is not None:
            _current.append(runtime)


def runtime() -> Runtime:
    with _lock:
        if not _current:
            from dotenv import load_dotenv

            load_dotenv()
            _current.append(Runtime.build(Config.from_env()))
        return _current[0]
