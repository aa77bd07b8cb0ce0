"""TTS puts a chunk's frames into the turn's feed in one call (`FrameBuffer.send_run_nowait`):
as many as fit, in order; the frame that does not fit waits for room as before, and the turn's
`synthesized` count is what the frame-by-frame loop counted (a frame counts once it is tried,
so a turn cut while TTS waits for room reports the frame it held). The scripted voice's chunks
are the same every time for the same text. Virtual clock only."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors.playout import PlayoutCursor
from bargein.actors.tts import TurnAudio, _FrameSink
from bargein.actors.turn_feed import FrameBuffer, FrameRun
from bargein.engines.base import TtsChunk
from bargein.runtime.bus import EventBus
from bargein.runtime.messages import OutFrame
from bargein.testing.scripted import ScriptedTts

FRAME = 320


def _run(n: int) -> FrameRun:
    return FrameRun(1, np.repeat(np.arange(n, dtype=np.int16), FRAME), 0, FRAME)


async def test_as_many_as_fit_go_in_order_and_the_reader_is_woken() -> None:
    buffer = FrameBuffer(4)
    got: list[OutFrame] = []

    async def reader() -> None:
        got.append(await buffer.take())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await trio.testing.wait_all_tasks_blocked()
        rest = buffer.send_run_nowait(_run(6))  # frames 0-3; 4 and 5 do not fit
    assert rest is not None and rest.count == 2 and rest.start == 4 * FRAME
    assert [f.start for f in got] == [0]
    last = rest.split(1)
    assert buffer.send_run_nowait(rest) is None  # frame 4
    assert buffer.send_run_nowait(last) is last  # full: nothing went in
    taken = [buffer.take_nowait() for _ in range(4)]
    assert [(f.start, int(f.pcm[0])) for f in taken if f is not None] == [
        (k * FRAME, k) for k in range(1, 5)
    ]
    buffer.close()
    with pytest.raises(trio.ClosedResourceError):
        buffer.send_run_nowait(_run(1))
    released = FrameBuffer(4)
    released.release()
    with pytest.raises(trio.BrokenResourceError):
        released.send_run_nowait(_run(1))


async def test_a_chunk_beyond_the_room_waits_and_counts_as_the_frame_loop_did(
    autojump_clock: trio.testing.MockClock,
) -> None:
    buffer = FrameBuffer(7, refill=2)
    cursor = PlayoutCursor(1, 16000)
    sink = _FrameSink(TurnAudio(1, 16000, 16000, FRAME), buffer, cursor,
                      EventBus("s", trio.current_time()), None)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sink.send, TtsChunk(np.ones(10 * FRAME, np.int16), ()))
        await trio.testing.wait_all_tasks_blocked()
        assert len(buffer) == 7
        assert cursor.synthesized == 8 * FRAME  # the 7 queued and the one waiting for room
        taken = [buffer.take_nowait() for _ in range(7)]
        await trio.sleep(1)
        assert len(buffer) == 3 and cursor.synthesized == 10 * FRAME
    rest = [buffer.take_nowait() for _ in range(3)]
    starts = [f.start if f is not None else -1 for f in taken + rest]
    assert starts == [k * FRAME for k in range(10)]  # all, in order


def test_the_scripted_voice_gives_the_same_chunks_for_the_same_text() -> None:
    tts = ScriptedTts(ms_per_char=60.0, chunk_ms=100.0)
    text = "Sure, here is a short answer."
    pcm, marks = tts.render(text)
    chunks = tts.chunks(text)
    assert chunks is tts.chunks(text)
    assert np.array_equal(np.concatenate([c.pcm for c in chunks]), pcm)
    assert [w for c in chunks for w in c.words] == marks  # every word once, in its chunk
    step = 1600
    for k, c in enumerate(chunks):
        assert all(k * step <= w.sample < (k + 1) * step for w in c.words)
