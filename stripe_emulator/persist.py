"""Keep the emulator's objects across restarts (opt-in): a JSON snapshot in one file.

`make run` keeps its SQLite database between runs; without this the emulator
forgot the customers and subscriptions behind it and the next seat change failed
with `404 No such subscription`. Tests leave it off and stay in memory.

Kept: every object (customers, prices, subscriptions, invoices, events, ...) in
creation order, and the emulated time. Not kept: webhook endpoints (whoever starts
the emulator registers them again, with its current secret), idempotency records,
the request log, rate-limit counters and failure rules: a restart is a fresh
process in those respects, as Stripe's own short-lived records would be.

The snapshot is written (atomically: a temporary file renamed over it) when it
changed, and on `stop()`. Every `interval` seconds the saver looks at the object
count (a change adds an event, so the count moves): only then, or every
`FULL_CHECK_EVERY` seconds, is the whole state serialised and compared.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stripe_emulator.emulator import StripeEmulator

log = logging.getLogger("stripe_emulator.persist")

VERSION = 1
FULL_CHECK_EVERY = 30.0
NOT_KEPT = frozenset({"webhook_endpoint"})


def snapshot_text(emulator: StripeEmulator) -> str:
    """The emulator's objects and time as JSON (under the store's lock: a consistent cut)."""
    store = emulator.store
    with store.mutex:
        objects = sorted(
            (o for o in store.objects.values() if o.get("object") not in NOT_KEPT),
            key=lambda o: int(o["_seq"]),
        )
        return json.dumps(
            {"version": VERSION, "now": emulator.clock.now(), "objects": objects},
            separators=(",", ":"),
        )


def load(emulator: StripeEmulator, path: Path) -> int:
    """Add the objects of the snapshot at `path` to the (empty) emulator; how many."""
    if not path.exists():
        return 0
    data: dict[str, Any] = json.loads(path.read_text())
    if data.get("version") != VERSION:
        raise ValueError(f"{path}: snapshot version {data.get('version')!r}, expected {VERSION}")
    store = emulator.store
    with store.mutex:
        for obj in data["objects"]:
            store.add(obj)  # in creation order: list order stays as it was
    emulator.clock.set(float(data["now"]))  # time never runs backwards across a restart
    return len(data["objects"])


def write(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a crash leaves the old or the new file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class Persistence:
    """Loads `path` into the emulator, then keeps `path` up to date until `stop()`."""

    def __init__(self, emulator: StripeEmulator, path: Path, interval: float = 1.0) -> None:
        self.emulator = emulator
        self.path = path
        self.interval = interval
        self._written: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name="stripe-emulator-persist", daemon=True
        )

    def start(self) -> int:
        """Load the snapshot (objects restored: how many) and start saving changes."""
        restored = load(self.emulator, self.path)
        self._written = snapshot_text(self.emulator) if restored else None
        self._thread.start()
        return restored

    def save(self) -> bool:
        """Write the snapshot if anything changed since the last write."""
        text = snapshot_text(self.emulator)
        if text == self._written:
            return False
        write(self.path, text)
        self._written = text
        return True

    def _run(self) -> None:
        seen, last_full = -1, time.monotonic()
        while not self._stop.wait(self.interval):
            count = len(self.emulator.store.objects)
            if count == seen and time.monotonic() - last_full < FULL_CHECK_EVERY:
                continue
            seen, last_full = count, time.monotonic()
            try:
                self.save()
            except Exception:
                log.exception("stripe emulator: could not save %s", self.path)

    def stop(self) -> None:
        """Stop the saver and write the last state."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 5)
        self.save()


def persist(emulator: StripeEmulator, path: Path, interval: float = 1.0) -> Persistence:
    """Restore the emulator from `path` (when it exists) and keep saving to it."""
    persistence = Persistence(emulator, path, interval)
    persistence.start()
    return persistence
