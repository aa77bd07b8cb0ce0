"""The TTS stage of a turn: synthesize sentence by sentence, convert to the output rate, cut into
fixed frames and place each spoken word on the turn's output timeline.

A chunk's whole frames go to the turn's feed as one `FrameRun`; egress cuts each frame when it
takes it (`turn_feed.FrameBuffer`), so frames dropped unplayed at a barge-in are never built."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import numpy as np
import trio

from bargein.dsp import Framer, Resampler
from bargein.engines.base import TtsChunk, TtsEngine
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.messages import Int16Array, WordMark

from .playout import PlayoutCursor
from .turn_feed import FrameBuffer, FrameRun


class TurnAudio:
    """Pure: engine chunks in, runs of output frames out (`FrameRun`: a chunk's whole frames,
    cut one by one when taken), each frame carrying the words that end in it.

    A word spans from its start to the next word's start (the last to the sentence's end), and
    rides on the frame that holds its end, so "sent" words are words sent whole. A word rides
    on a frame of the first run given out after its end is known (the next word's start, or
    the sentence's end) that reaches its end.
    """

    def __init__(self, turn: int, in_rate: int, out_rate: int, frame_samples: int) -> None:
        self.turn = turn
        self._ratio = out_rate / in_rate
        self._resampler = Resampler(in_rate, out_rate) if in_rate != out_rate else None
        self._delay = round(self._resampler.delay_samples) if self._resampler else 0
        self._framer = Framer(frame_samples)
        self._frame_samples = frame_samples
        self._in_total = 0
        self._emitted = 0
        self._ready: list[WordMark] = []
        self._sentence = 0
        self._sentence_base = 0
        self._tokens: list[str] = []
        self._next_token = 0
        self._open: tuple[str, int] | None = None

    def begin_sentence(self, index: int, text: str) -> None:
        self._sentence = index
        self._sentence_base = self._in_total
        self._tokens = text.split()
        self._next_token = 0
        self._open = None

    def push(self, chunk: TtsChunk) -> FrameRun | None:
        for word in chunk.words:
            # Engines may split a token ("1984" → several words): extra starts are ignored, so the
            # marks always spell the sentence's own text.
            if self._next_token < len(self._tokens):
                start = self._to_out(self._sentence_base + word.sample)
                self._close_open(start, ends_sentence=False)
                self._open = (self._tokens[self._next_token], start)
                self._next_token += 1
        self._in_total += len(chunk.pcm)
        pcm = self._resampler.process_int16(chunk.pcm) if self._resampler else chunk.pcm
        return self._run(self._framer.push_whole(pcm))

    def end_sentence(self) -> None:
        end = self._to_out(self._in_total)
        if self._open is None:  # the engine gave no word marks: estimate them
            starts = self._estimate_starts(end)
            for i, (token, start) in enumerate(zip(self._tokens, starts, strict=True)):
                self._close_open(start, ends_sentence=False)
                self._open = (token, start)
                self._next_token = i + 1
        if self._open is not None and self._next_token < len(self._tokens):
            # Fewer marks than words: the last mark carries the rest of the sentence.
            rest = " ".join(self._tokens[self._next_token :])
            self._open = (f"{self._open[0]} {rest}", self._open[1])
        self._close_open(end, ends_sentence=True)
        self._tokens = []

    def _close_open(self, end: int, *, ends_sentence: bool) -> None:
        if self._open is not None:
            text, start = self._open
            self._ready.append(
                WordMark(text, start, max(start, end), self._sentence, ends_sentence)
            )
            self._open = None

    def finish(self) -> FrameRun | None:
        pcm: Int16Array = np.zeros(0, np.int16)
        if self._resampler is not None:
            pcm = self._resampler.flush_int16()
        parts = [p for p in (self._framer.push_whole(pcm), self._framer.flush(pad=True))
                 if p is not None]
        if not parts:
            if not self._ready:
                return None
            # The audio ended on a frame boundary: a short silence carries the last words.
            parts = [np.zeros(self._frame_samples, np.int16)]
        run = self._run(parts[0] if len(parts) == 1 else np.concatenate(parts))
        assert run is not None
        if self._ready:
            # Marks past the audio's end (rounding, filter delay) belong to the last frame.
            end = run.start + len(run.pcm)
            run.words = (run.words or []) + [
                WordMark(w.text, min(w.start, end), end, w.sentence, w.ends_sentence)
                for w in self._ready
            ]
            self._ready = []
        return run

    def _to_out(self, in_sample: int) -> int:
        return round(in_sample * self._ratio) + self._delay

    def _estimate_starts(self, end: int) -> list[int]:
        """No word marks from the engine: spread the words over the audio by character count."""
        if not self._tokens:
            return []
        base = self._to_out(self._sentence_base)
        weights = np.cumsum([0] + [len(t) + 1 for t in self._tokens[:-1]])
        total = sum(len(t) + 1 for t in self._tokens)
        return [base + int((end - base) * w / total) for w in weights]

    def _run(self, pcm: Int16Array | None) -> FrameRun | None:
        """Whole frames as a run, with the marks known now that end within it (the frame that
        reaches a mark's end carries it: `FrameRun.cut`)."""
        if pcm is None:
            return None
        start = self._emitted
        self._emitted = emitted = start + len(pcm)
        ready = self._ready
        if not ready or ready[0].end > emitted:  # (most chunks end no word)
            return FrameRun(self.turn, pcm, start, self._frame_samples)
        n = 1
        while n < len(ready) and ready[n].end <= emitted:
            n += 1
        self._ready = ready[n:]
        return FrameRun(self.turn, pcm, start, self._frame_samples, ready[:n])


class _FrameSink:
    """Takes the engine's chunks inline (no task per sentence, no channel hop per chunk)."""

    def __init__(
        self,
        audio: TurnAudio,
        frames: FrameBuffer,
        cursor: PlayoutCursor,
        bus: EventBus,
        room: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._audio = audio
        self._frames = frames
        self._room = room
        self._cursor = cursor
        self._bus = bus
        self._first = True

    async def send(self, chunk: TtsChunk, /) -> None:
        if self._first and len(chunk.pcm):
            self._first = False
            self._bus.emit(EventType.TTS_FIRST_AUDIO, self._audio.turn)
        run = self._audio.push(chunk)
        if run is None:
            await trio.lowlevel.checkpoint_if_cancelled()
        await self.send_run(run)

    async def send_run(self, run: FrameRun | None) -> None:
        # Frames go in without yielding while the feed has room; a full feed (TTS ahead of
        # playout by the buffer) makes it wait. A schedule point after a chunk only while egress
        # is short of frames (fewer than a refill queued before it: the first chunk, an
        # underrun), so it starts on them at once; otherwise an engine that synthesizes
        # without awaiting (a cached or scripted voice) fills the feed in one step instead of a
        # task step per chunk, and a live engine's own awaits are its schedule points.
        await trio.lowlevel.checkpoint_if_cancelled()
        if run is None:
            return
        buffer, cursor, size = self._frames, self._cursor, run.size
        short = len(buffer) < buffer.refill
        waited = False
        while run.count:
            count = run.count
            rest = buffer.send_run_nowait(run)  # as many frames as fit, in one call
            if rest is None:
                cursor.synthesized += count * size
                break
            cursor.synthesized += (count - rest.count) * size
            # Its first frame does not fit: counted as synthesized before the wait.
            cursor.synthesized += size
            waited = True
            one, run = rest, (rest.split(1) if rest.count > 1 else None)
            if self._room is not None:  # egress wakes us once it has taken a few frames
                await self._room()
                try:
                    buffer.send_nowait(one)
                except trio.WouldBlock:
                    await buffer.send(one)
            else:
                await buffer.send(one)
            if run is None:
                break
        if short and not waited:
            await trio.lowlevel.cancel_shielded_checkpoint()


async def run_tts(
    engine: TtsEngine,
    turn: int,
    sentences: trio.MemoryReceiveChannel[tuple[int, str]],
    frames: FrameBuffer,
    cursor: PlayoutCursor,
    bus: EventBus,
    *,
    out_rate: int,
    frame_samples: int,
    room: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """`room`, when given, is waited on when the turn's feed is full (egress's
    `TurnFeed.wait_room`: refilled a few frames at a time); else a full feed blocks per frame."""
    audio = TurnAudio(turn, engine.sample_rate, out_rate, frame_samples)
    sink = _FrameSink(audio, frames, cursor, bus, room)
    async with sentences, frames:
        async for index, sentence in sentences:
            audio.begin_sentence(index, sentence)
            await engine.synthesize(sentence, sink)
            audio.end_sentence()
        await sink.send_run(audio.finish())
