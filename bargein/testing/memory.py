"""An in-memory transport: records what the session sends, with the trio time it was sent."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import trio

from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import Int16Array, OutFrame

if TYPE_CHECKING:
    from bargein.session import Session


@dataclass
class MemoryTransport:
    frames: list[tuple[float, OutFrame]] = field(default_factory=list)
    clears: list[tuple[float, int]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    keep_events: bool = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "send_audio" in cls.__dict__ and "send_audio_nowait" not in cls.__dict__:
            # A subclass that sends its own way (a test's exploding or logging transport) gets
            # every frame through its `send_audio`: egress finds no `send_audio_nowait`.
            cls.send_audio_nowait = None  # type: ignore[assignment]

    async def send_audio(self, frame: OutFrame) -> None:
        self.frames.append((trio.current_time(), frame))
        await trio.lowlevel.checkpoint()

    def send_audio_nowait(self, frame: OutFrame) -> bool:
        self.frames.append((trio.current_time(), frame))
        return True

    async def send_clear(self, turn: int) -> None:
        self.clears.append((trio.current_time(), turn))
        await trio.lowlevel.checkpoint()

    async def send_event(self, event: Event) -> None:
        if self.keep_events:
            self.events.append(event)
        await trio.lowlevel.checkpoint()

    def of_type(self, type: EventType) -> list[Event]:
        return [e for e in self.events if e.type == type]

    def turn_frames(self, turn: int) -> list[tuple[float, OutFrame]]:
        return [(t, f) for t, f in self.frames if f.turn == turn]

    def turn_audio(self, turn: int) -> Int16Array:
        pcm = [f.pcm for _, f in self.turn_frames(turn)]
        return np.concatenate(pcm) if pcm else np.zeros(0, np.int16)


class OrderedTransport(MemoryTransport):
    """Records sends and clears in one ordered log with the session's events (a bus listener
    adds those inline), so "after the decision" is decided by order, not by timestamps."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, object]] = []

    def watch(self, session: Session) -> None:
        session.bus.add_listener(lambda e: self.log.append(("event", e)))

    async def send_audio(self, frame: OutFrame) -> None:
        self.log.append(("audio", frame))
        await super().send_audio(frame)

    def send_audio_nowait(self, frame: OutFrame) -> bool:
        self.log.append(("audio", frame))
        return MemoryTransport.send_audio_nowait(self, frame)

    async def send_clear(self, turn: int) -> None:
        await trio.lowlevel.checkpoint()  # a real transport awaits before the peer has it
        self.log.append(("clear", turn))
        await super().send_clear(turn)

    def frames_after(self, event: Event) -> list[OutFrame]:
        """The frames of `event`'s turn sent after `event` was emitted."""
        at = self.log.index(("event", event))
        return [
            f
            for kind, f in self.log[at:]
            if kind == "audio" and isinstance(f, OutFrame) and f.turn == event.turn
        ]
