"""The TTS stage of a turn: synthesize sentence by sentence, convert to the output rate, cut into
fixed frames and place each spoken word on the turn's output timeline."""

from __future__ import annotations

import numpy as np
import trio

from bargein.dsp import Framer, Resampler, float32_to_pcm16
from bargein.engines.base import TtsChunk, TtsEngine
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.messages import Int16Array, OutFrame, WordMark

from .playout import PlayoutCursor


class TurnAudio:
    """Pure: engine chunks in, output frames out, each frame carrying the words that end in it.

    A word spans from its start to the next word's start (the last to the sentence's end), and
    rides on the frame that holds its end, so "sent" words are words sent whole.
    """

    def __init__(self, turn: int, in_rate: int, out_rate: int, frame_samples: int) -> None:
        self.turn = turn
        self._ratio = out_rate / in_rate
        self._resampler = Resampler(in_rate, out_rate) if in_rate != out_rate else None
        self._delay = round(self._resampler.delay_ms * out_rate / 1000) if self._resampler else 0
        self._framer = Framer(frame_samples)
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

    def push(self, chunk: TtsChunk) -> list[OutFrame]:
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
        return self._frames(self._framer.push(pcm))

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

    def finish(self) -> list[OutFrame]:
        pcm: Int16Array = np.zeros(0, np.int16)
        if self._resampler is not None:
            pcm = float32_to_pcm16(self._resampler.flush())
        frames = self._framer.push(pcm)
        last = self._framer.flush(pad=True)
        if last is not None:
            frames.append(last)
        out = self._frames(frames)
        if self._ready and out:
            # Marks past the audio's end (rounding, filter delay) belong to the last frame.
            f = out[-1]
            out[-1] = OutFrame(
                f.turn,
                f.pcm,
                f.start,
                f.words
                + tuple(
                    WordMark(w.text, min(w.start, f.end), f.end, w.sentence, w.ends_sentence)
                    for w in self._ready
                ),
            )
            self._ready = []
        return out

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

    def _frames(self, chunks: list[Int16Array]) -> list[OutFrame]:
        frames = []
        for pcm in chunks:
            start, self._emitted = self._emitted, self._emitted + len(pcm)
            n = 0
            while n < len(self._ready) and self._ready[n].end <= self._emitted:
                n += 1
            words, self._ready = tuple(self._ready[:n]), self._ready[n:]
            frames.append(OutFrame(self.turn, pcm, start, words))
        return frames


async def run_tts(
    engine: TtsEngine,
    turn: int,
    sentences: trio.MemoryReceiveChannel[tuple[int, str]],
    frames: trio.MemorySendChannel[OutFrame],
    cursor: PlayoutCursor,
    bus: EventBus,
    *,
    out_rate: int,
    frame_samples: int,
) -> None:
    audio = TurnAudio(turn, engine.sample_rate, out_rate, frame_samples)
    first = True
    async with sentences, frames:
        async for index, sentence in sentences:
            audio.begin_sentence(index, sentence)
            send, recv = trio.open_memory_channel[TtsChunk](4)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_synthesize, engine, sentence, send)
                async with recv:
                    async for chunk in recv:
                        if first and len(chunk.pcm):
                            first = False
                            bus.emit(EventType.TTS_FIRST_AUDIO, turn)
                        for frame in audio.push(chunk):
                            cursor.synthesized += len(frame.pcm)
                            await frames.send(frame)
            audio.end_sentence()
        for frame in audio.finish():
            cursor.synthesized += len(frame.pcm)
            await frames.send(frame)


async def _synthesize(engine: TtsEngine, text: str, out: trio.MemorySendChannel[TtsChunk]) -> None:
    async with out:
        await engine.synthesize(text, out)
