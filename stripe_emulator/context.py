"""What one request (or one clock tick) carries through the billing code."""

from __future__ import annotations

from dataclasses import dataclass, field

from stripe_emulator.events import EventBus
from stripe_emulator.store import Store
from stripe_emulator.wire import JSONDict


@dataclass
class Ctx:
    store: Store
    bus: EventBus
    request_id: str | None = None
    idempotency_key: str | None = None
    _queued: list[tuple[str, list[str]]] = field(default_factory=list)

    @property
    def now(self) -> int:
        return self.store.clock.now()

    def emit(self, event_type: str, obj: JSONDict, previous: JSONDict | None = None) -> None:
        self._queued.append(
            self.bus.create(
                event_type,
                obj,
                previous_attributes=previous,
                request_id=self.request_id,
                idempotency_key=self.idempotency_key,
            )
        )

    def flush(self) -> None:
        """Hand this request's events to webhook delivery (after its changes are made)."""
        queued, self._queued = self._queued, []
        for event_id, endpoints in queued:
            self.bus.dispatcher.enqueue(event_id, endpoints)
