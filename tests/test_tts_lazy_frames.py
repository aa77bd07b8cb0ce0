"""TTS hands the turn's feed whole chunks (`FrameRun`s) and egress cuts a frame only when it takes
it: the frames a barge-in drops unplayed are never built, yet they are counted as dropped as
before; a run split where the feed is full carries each word on the same frame as the run
uncut; `Framer.push_whole` gives the samples and counters of `Framer.push`. Virtual clock only."""

from __future__ import annotations

import random

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors.egress import AudioStarted, Egress
from bargein.actors.tts import run_tts
from bargein.actors.turn_feed import FrameBuffer, FrameRun
from bargein.dsp import Framer
from bargein.runtime.bus import EventBus
from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame, WordMark
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedTts

FRAME = 320


async def test_frames_dropped_at_a_barge_in_are_counted_but_never_cut(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuts = 0
    cut = FrameRun.cut

    def counting(self: FrameRun) -> OutFrame:
        nonlocal cuts
        cuts += 1
        return cut(self)

    monkeypatch.setattr(FrameRun, "cut", counting)
    transport = MemoryTransport()
    bus = EventBus("s", trio.current_time())
    started_send, started = trio.open_memory_channel[AudioStarted](10)
    egress = Egress(transport, bus, rate=16000, lead_ms=0, buffer_frames=100,
                    on_audio_started=started_send)
    events: list[Event] = []
    bus.add_listener(events.append)
    text = "Sure, here is a short answer. It runs for a couple of seconds."
    async with trio.open_nursery() as nursery:
        await nursery.start(egress.run)
        frames, feed = egress.open_turn(1)
        sentences_send, sentences = trio.open_memory_channel[tuple[int, str]](8)
        nursery.start_soon(lambda: run_tts(
            ScriptedTts(), 1, sentences, frames, feed.cursor, bus, out_rate=16000,
            frame_samples=FRAME, room=feed.wait_room))
        async with sentences_send:
            for i, sentence in enumerate(text.split(". ")):
                await sentences_send.send((i, sentence))
        await started.receive()
        await trio.sleep(0.41)  # about 21 frames played
        assert egress.interrupt(1)
        await feed.done.wait()
        nursery.cancel_scope.cancel()
    cleared = [e.data for e in events if e.type is EventType.OUTPUT_CLEARED]
    sent = len(transport.frames)
    assert 15 <= sent <= 25
    # What was queued is counted dropped: the whole feed (TTS keeps it full), besides the
    # frame held at the decision and the one TTS waited to put in (counted synthesized).
    dropped = cleared[0]["frames_dropped"]
    assert dropped == 100 == feed.cursor.frames_dropped
    assert sent + dropped + 2 == feed.cursor.synthesized // FRAME
    # Only what went out was ever cut into a frame (at most the one held at the decision more).
    assert sent <= cuts <= sent + 1


def test_dropping_counts_the_frames_of_partly_cut_runs() -> None:
    buffer = FrameBuffer(20)
    buffer.send_nowait(FrameRun(1, np.zeros(6 * FRAME, np.int16), 0, FRAME))
    assert buffer.take_nowait() is not None and buffer.take_nowait() is not None
    buffer.send_nowait(OutFrame(1, np.zeros(FRAME, np.int16), 6 * FRAME))
    buffer.send_nowait(FrameRun(1, np.zeros(3 * FRAME, np.int16), 7 * FRAME, FRAME))
    assert len(buffer) == 8
    assert buffer.drop_all() == 8
    assert len(buffer) == 0 and buffer.take_nowait() is None


def _marks(rng: random.Random, start: int, frames: int) -> list[WordMark]:
    ends = sorted(rng.sample(range(start + 1, start + frames * FRAME + 1), rng.randint(0, 8)))
    return [WordMark(f"w{i}", e - 100, e) for i, e in enumerate(ends)]


def _all(run: FrameRun) -> list[tuple[int, tuple[str, ...]]]:
    out = []
    while run.count:
        f = run.cut()
        out.append((f.start, tuple(w.text for w in f.words)))
    return out


def test_a_run_split_anywhere_puts_each_word_on_the_same_frame() -> None:
    rng = random.Random(7)
    for _ in range(200):
        frames = rng.randint(1, 8)
        marks = _marks(rng, 960, frames)
        pcm = np.arange(frames * FRAME, dtype=np.int16)
        whole = _all(FrameRun(1, pcm, 960, FRAME, list(marks)))
        # Each word on the first frame whose end reaches the word's end.
        for start, words in whole:
            for text in words:
                end = next(m.end for m in marks if m.text == text)
                assert start < end <= start + FRAME
        assert sum(len(w) for _, w in whole) == len(marks)
        head = FrameRun(1, pcm, 960, FRAME, list(marks))
        taken = [head.cut() for _ in range(rng.randint(0, frames - 1))]
        at = rng.randint(1, head.count) if head.count > 1 else 1
        rest = head.split(at) if head.count > at else None
        parts = [(f.start, tuple(w.text for w in f.words)) for f in taken] + _all(head)
        if rest is not None:
            parts += _all(rest)
        assert parts == whole


def test_push_whole_gives_push_s_samples_and_counters() -> None:
    rng = random.Random(3)
    for _ in range(100):
        a, b = Framer(FRAME), Framer(FRAME)
        for _ in range(rng.randint(1, 12)):
            chunk = np.array([rng.randrange(-3000, 3000) for _ in range(rng.randint(0, 1500))],
                             np.int16)
            frames = a.push(chunk)
            whole = b.push_whole(chunk)
            chunk[:] = 0  # the caller reuses its buffer: neither aliases it
            if frames:
                assert whole is not None
                assert np.array_equal(np.concatenate(frames), whole)
            else:
                assert whole is None
            assert (a.samples_in, a.samples_out, a.frames_out, a.pending) == (
                b.samples_in, b.samples_out, b.frames_out, b.pending)
        last_a, last_b = a.flush(pad=True), b.flush(pad=True)
        assert (last_a is None) == (last_b is None)
        if last_a is not None and last_b is not None:
            assert np.array_equal(last_a, last_b)
