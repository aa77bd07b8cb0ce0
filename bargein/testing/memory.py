"""An in-memory transport: records what the session sends, with the trio time it was sent."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trio

from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import Int16Array, OutFrame


@dataclass
class MemoryTransport:
    frames: list[tuple[float, OutFrame]] = field(default_factory=list)
    clears: list[tuple[float, int]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    keep_events: bool = True

    async def send_audio(self, frame: OutFrame) -> None:
        self.frames.append((trio.current_time(), frame))
        await trio.lowlevel.checkpoint()

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
