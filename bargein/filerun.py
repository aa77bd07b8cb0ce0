"""Run a whole conversation from recorded audio: the recording is the microphone.

Used by `bargein run` and the engine benchmark's voice-to-voice figures. On a virtual clock (trio's
`MockClock(autojump_threshold=0)` with `SessionConfig(compute="inline")`) it runs as fast as the
engines allow while every timing stays in media time; on the real clock it runs in real time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import trio

from bargein.dsp import Resampler
from bargein.engines.base import Engines
from bargein.runtime.events import Event
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import Int16Array, OutFrame
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import feed_live


@dataclass
class TimelineTransport:
    """Collects reply audio where the user would hear it: at its send time plus the lead."""

    rate: int
    lead_s: float = 0.0
    t0: float = 0.0
    frames: list[tuple[float, OutFrame]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    async def send_audio(self, frame: OutFrame) -> None:
        self.frames.append((trio.current_time() - self.t0 + self.lead_s, frame))
        await trio.lowlevel.checkpoint()

    async def send_clear(self, turn: int) -> None:
        # Audio of the turn scheduled to play after the clear never reaches the speaker.
        now = trio.current_time() - self.t0
        self.frames = [(t, f) for t, f in self.frames if f.turn != turn or t < now]
        await trio.lowlevel.checkpoint()

    async def send_event(self, event: Event) -> None:
        self.events.append(event)
        await trio.lowlevel.checkpoint()

    def render(self, length_s: float) -> Int16Array:
        """The reply audio on the input's timeline (silence where nothing played)."""
        end = max([length_s] + [t + len(f.pcm) / self.rate for t, f in self.frames])
        out = np.zeros(int(np.ceil(end * self.rate)), np.int16)
        for t, f in self.frames:
            at = round(t * self.rate)
            out[at : at + len(f.pcm)] = f.pcm[: max(0, len(out) - at)]
        return out


@dataclass
class Conversation:
    events: list[Event]
    messages: tuple[ChatMessage, ...]
    reply_audio: Int16Array
    rate: int
    end_reason: str


async def converse(
    pcm: Int16Array,
    rate: int,
    engines: Engines,
    config: SessionConfig | None = None,
    *,
    chunk_ms: int = 20,
    drain_s: float = 120.0,
) -> Conversation:
    """Feed `pcm` (at `rate`) live into a session, end the input, and wait until the assistant
    has finished answering (at most `drain_s` of session time after the input ended)."""
    config = config or SessionConfig()
    if rate != config.input_rate:
        resampler = Resampler(rate, config.input_rate)
        pcm = np.concatenate([resampler.process_int16(pcm), resampler.flush_int16()])
    transport = TimelineTransport(config.output_rate, config.egress_lead_ms / 1000)
    async with open_session(config, engines, transport) as session:
        transport.t0 = session.bus.t0
        await feed_live(session.push_audio, pcm, config.input_rate, chunk_ms)
        session.end_input()
        with trio.move_on_after(drain_s):
            await session.wait_closing()
        # No deadline over the session's own (bounded) shutdown: on a virtual clock it would be
        # the next deadline, and the clock would jump to it while the shutdown waits for real
        # work (a CPU worker's reply), so the session would end `drain_s` late.
        if session.end_reason is not None:  # (else the drain ran out: leaving the block closes it)
            await session.wait_ended()
    length_s = len(pcm) / config.input_rate
    return Conversation(
        events=transport.events,
        messages=session.messages,
        reply_audio=transport.render(length_s),
        rate=config.output_rate,
        end_reason=session.end_reason or "closed",
    )
