"""TTS takes a schedule point after a chunk only while egress is short of frames: the first
frames reach egress at once (it sends them before the rest is synthesized), and an engine that
synthesizes without awaiting fills the feed without a task step per chunk (counted by a trio
instrument on a virtual clock, never by wall time)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import trio
import trio.testing

from bargein.actors.egress import AudioStarted, Egress
from bargein.actors.playout import PlayoutCursor
from bargein.actors.tts import TurnAudio, _FrameSink
from bargein.actors.turn_feed import FrameBuffer, TurnFeed
from bargein.engines.base import TtsChunk
from bargein.runtime.bus import EventBus
from bargein.runtime.messages import OutFrame
from bargein.testing.memory import MemoryTransport

FRAME = 320
CHUNK = 5 * FRAME  # 100 ms, as the scripted voice


class Steps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] += 1


async def test_first_frames_go_out_at_once_and_the_rest_fills_without_a_step_per_chunk(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps = Steps()
    log: list[str] = []

    class Logging(MemoryTransport):
        async def send_audio(self, frame: OutFrame) -> None:
            log.append("sent")
            await super().send_audio(frame)

    transport = Logging()
    bus = EventBus("s", trio.current_time())
    started_send, started = trio.open_memory_channel[AudioStarted](10)
    buffer_frames, chunks = 100, 16  # the whole reply fits: TTS never waits for room
    egress = Egress(transport, bus, rate=16000, lead_ms=0, buffer_frames=buffer_frames,
                    on_audio_started=started_send)

    async def tts(frames: FrameBuffer, feed: TurnFeed) -> None:
        sink = _FrameSink(TurnAudio(1, 16000, 16000, FRAME), frames, PlayoutCursor(1, 16000),
                          bus, feed.wait_room)
        async with frames:
            for k in range(chunks):  # an engine that never awaits on its own
                log.append(f"chunk{k}")
                await sink.send(TtsChunk(np.full(CHUNK, k, np.int16), ()))

    async with trio.open_nursery() as nursery:
        await nursery.start(egress.run, name="egress")
        frames, feed = egress.open_turn(1)
        trio.lowlevel.add_instrument(steps)
        nursery.start_soon(tts, frames, feed, name="tts")
        await started.receive()
        await feed.done.wait()
        nursery.cancel_scope.cancel()
    assert len(transport.frames) == chunks * 5
    # egress sent the first frame while TTS was still at its first chunks
    assert log.index("sent") < log.index("chunk3")
    # a schedule point while egress was short (the first chunks), not one per chunk
    assert steps.steps["tts"] <= 4
