"""The emulated clock: real time plus an offset, optionally frozen; tests move it forward."""

from __future__ import annotations

import threading
import time


class Clock:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._offset = 0.0
        self._frozen_at: float | None = None

    def now(self) -> int:
        return int(self.now_float())

    def now_float(self) -> float:
        with self._lock:
            if self._frozen_at is not None:
                return self._frozen_at
            return time.time() + self._offset

    def freeze(self, frozen: bool) -> None:
        with self._lock:
            if frozen and self._frozen_at is None:
                self._frozen_at = float(int(time.time() + self._offset))
            elif not frozen and self._frozen_at is not None:
                self._offset = self._frozen_at - time.time()
                self._frozen_at = None

    @property
    def frozen(self) -> bool:
        return self._frozen_at is not None

    def set(self, ts: float) -> None:
        """Jump to `ts` (never backwards)."""
        with self._lock:
            current = self._frozen_at if self._frozen_at is not None else time.time() + self._offset
            if ts <= current:
                return
            if self._frozen_at is not None:
                self._frozen_at = float(ts)
            else:
                self._offset += ts - current

    def reset(self) -> None:
        with self._lock:
            self._offset = 0.0
            self._frozen_at = None
