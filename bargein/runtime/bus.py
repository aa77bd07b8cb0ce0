"""A session's event stream, and the process-wide hub that merges all sessions' streams."""

from __future__ import annotations

from collections import Counter
from typing import Any

import trio

from bargein.runtime.broadcast import Broadcast
from bargein.runtime.events import Event, EventType
from bargein.runtime.logs import log_failure


class EventHub(Broadcast[Event]):
    """All sessions' events in one stream (monitoring dashboards, process-wide metrics)."""


class EventBus(Broadcast[Event]):
    """Stamps and numbers a session's events and fans them out to its consumers (and the hub)."""

    def __init__(
        self, session_id: str, t0: float, hub: EventHub | None = None, *, first_seq: int = 0
    ) -> None:
        super().__init__()
        self.session_id = session_id
        self.t0 = t0
        self.counts: Counter[str] = Counter()
        self._seq = first_seq  # a resumed conversation continues its numbering
        if hub is not None:
            self.add_listener(hub.publish)

    def now(self) -> float:
        """The session clock: seconds since the session started, on trio's clock."""
        return trio.current_time() - self.t0

    def emit(self, type: EventType, turn: int | None = None, **data: Any) -> Event:
        event = Event(type, self.now(), self.session_id, self._seq, turn, data)
        self._seq += 1
        self.counts[type.value] += 1
        self.publish(event)
        return event

    def error(
        self, source: str, exc: BaseException, *, fatal: bool, turn: int | None = None,
        **extra: Any,
    ) -> Event:
        """An `error` event for an exception caught by `source`, and one log line with its
        traceback (`bargein.runtime.logs`)."""
        log_failure(self.session_id, source, exc, fatal=fatal, turn=turn)
        return self.emit(
            EventType.ERROR, turn, source=source, error=type(exc).__name__, message=str(exc),
            fatal=fatal, **extra,
        )
