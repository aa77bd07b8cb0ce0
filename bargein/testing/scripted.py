"""Scripted engines: deterministic STT / planner / TTS with modelled latencies, for tests,
benchmarks and research under a virtual clock. Latencies are `trio.sleep`s, so they cost
nothing under `autojump_clock` and are exact in the trace."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import trio

from bargein.engines.base import (
    PlanOutput,
    PlanRequest,
    Recognizer,
    Sink,
    TextDelta,
    TtsChunk,
    WordStart,
)
from bargein.runtime.messages import Int16Array


class PartialReveal:
    """Scripted partial transcripts for one utterance: one more word of the text per
    `ms_per_word` of audio heard (0: no partials), reported only when it changes. Shared by
    `ScriptedRecognizer` and the research harness's per-item recognizer."""

    def __init__(self) -> None:
        self.heard_ms = 0.0
        self.partial = ""

    def feed(self, text: str, samples: int, ms_per_word: float, rate: int = 16000) -> str | None:
        """Count `samples` more audio at `rate`; the new partial of `text`, or None."""
        self.heard_ms += 1000 * samples / rate
        if not ms_per_word:
            return None
        partial = " ".join(text.split()[: int(self.heard_ms // ms_per_word)])
        if partial == self.partial:
            return None
        self.partial = partial
        return partial


class ScriptedRecognizer:
    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if "feed" in cls.__dict__ and "feed_nowait" not in cls.__dict__:
            # A subclass that feeds its own way (a test's counting recognizer) gets every batch
            # through its `feed`: STT finds no `feed_nowait` (see `actors.stt.SyncFeed`).
            cls.feed_nowait = None  # type: ignore[assignment]

    def __init__(self, engine: ScriptedStt) -> None:
        self._engine = engine
        self._reveal = PartialReveal()

    async def start_utterance(self) -> None:
        self._reveal = PartialReveal()
        await trio.lowlevel.checkpoint()

    async def feed(self, pcm: Int16Array) -> str | None:
        await trio.lowlevel.checkpoint()
        return self._partial(pcm)

    def feed_nowait(self, pcm: Int16Array) -> str | None:
        """`feed` without its schedule point (`actors.stt.SyncFeed`): the same partials."""
        return self._partial(pcm)

    def _partial(self, pcm: Int16Array) -> str | None:
        e = self._engine
        return self._reveal.feed(e.peek(), len(pcm), e.ms_per_word)

    async def end_utterance(self) -> str:
        await trio.sleep(self._engine.final_delay_ms / 1000)
        return self._engine.take()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


class ScriptedStt:
    """Utterance n is transcribed as `transcripts[n]` (then `default`), after `final_delay_ms`.
    Partials reveal one more word every `ms_per_word` of audio (0: no partials)."""

    name = "scripted"

    def __init__(
        self,
        transcripts: Sequence[str] = (),
        *,
        default: str = "hello there",
        final_delay_ms: float = 0.0,
        ms_per_word: float = 0.0,
    ) -> None:
        self._queue = list(transcripts)
        self.default = default
        self.final_delay_ms = final_delay_ms
        self.ms_per_word = ms_per_word
        self.utterances = 0

    def peek(self) -> str:
        return self._queue[0] if self._queue else self.default

    def take(self) -> str:
        self.utterances += 1
        return self._queue.pop(0) if self._queue else self.default

    def recognizer(self) -> Recognizer:
        return ScriptedRecognizer(self)


Reply = str | Sequence[PlanOutput]


class ScriptedPlanner:
    """Replies from a list (cycled) or a function of the request, streamed word by word after
    `first_token_ms`, then at `tokens_per_second` (0: all at once). Every request is recorded
    in `requests` (`record=False`: none, for a server that runs one per session for hours)."""

    name = "scripted"

    def __init__(
        self,
        replies: Sequence[Reply] | Callable[[PlanRequest], Reply] = ("Okay.",),
        *,
        first_token_ms: float = 0.0,
        tokens_per_second: float = 0.0,
        fail_after_tokens: int | None = None,
        record: bool = True,
    ) -> None:
        self._replies = replies if callable(replies) else itertools.cycle(replies)
        self.first_token_ms = first_token_ms
        self.tokens_per_second = tokens_per_second
        self.fail_after_tokens = fail_after_tokens
        self.requests: list[PlanRequest] = []
        self.record = record
        self.tokens_sent = 0

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        if self.record:
            self.requests.append(request)
        reply = self._replies(request) if callable(self._replies) else next(self._replies)
        items = [TextDelta(t) for t in tokens(reply)] if isinstance(reply, str) else list(reply)
        if self.first_token_ms:
            await trio.sleep(self.first_token_ms / 1000)
        for i, item in enumerate(items):
            if i and self.tokens_per_second:
                await trio.sleep(1 / self.tokens_per_second)
            if self.fail_after_tokens is not None and i >= self.fail_after_tokens:
                raise RuntimeError("scripted planner failure")
            await out.send(item)
            if isinstance(item, TextDelta):
                self.tokens_sent += 1
        await trio.lowlevel.checkpoint()


def tokens(text: str) -> list[str]:
    """Split like an LLM streams: each word with its leading space."""
    return re.findall(r"\s*\S+", text)


class ScriptedTts:
    """Speech-like audio (a voiced buzz) for each word, `ms_per_char` per character plus one
    for the gap, with exact word marks; first audio after `first_audio_ms`, then chunks of
    `chunk_ms` produced at `realtime_factor` (compute seconds per audio second; 0: instant).
    Every sentence is recorded in `sentences` (`record=False`: none)."""

    name = "scripted"

    def __init__(
        self,
        sample_rate: int = 16000,
        *,
        ms_per_char: float = 60.0,
        first_audio_ms: float = 0.0,
        chunk_ms: float = 100.0,
        realtime_factor: float = 0.0,
        fail_on: str | None = None,
        record: bool = True,
    ) -> None:
        self.sample_rate = sample_rate
        self.ms_per_char = ms_per_char
        self.first_audio_ms = first_audio_ms
        self.chunk_ms = chunk_ms
        self.realtime_factor = realtime_factor
        self.fail_on = fail_on
        self.sentences: list[str] = []
        self.record = record

    @functools.lru_cache(maxsize=256)  # noqa: B019 - engines live as long as the process
    def render(self, text: str) -> tuple[Int16Array, list[WordStart]]:
        rate = self.sample_rate
        pieces: list[np.ndarray] = []
        marks: list[WordStart] = []
        at = 0
        for word in text.split():
            n = max(1, int(rate * self.ms_per_char * (len(word) + 1) / 1000))
            t = np.arange(n) / rate
            pieces.append(0.3 * np.sign(np.sin(2 * np.pi * 140 * t)) * np.hanning(n))
            marks.append(WordStart(word, at))
            at += n
        pcm = np.concatenate(pieces) if pieces else np.zeros(0)
        return (pcm * 32767).astype(np.int16), marks

    async def synthesize(self, text: str, out: Sink[TtsChunk]) -> None:
        if self.record:
            self.sentences.append(text)
        if self.fail_on is not None and self.fail_on in text:
            raise RuntimeError(f"scripted TTS failure on {self.fail_on!r}")
        chunks = self.chunks(text)
        if self.first_audio_ms:
            await trio.sleep(self.first_audio_ms / 1000)
        step = max(1, int(self.sample_rate * self.chunk_ms / 1000))
        for i, chunk in enumerate(chunks):
            if i and self.realtime_factor:
                await trio.sleep(self.realtime_factor * step / self.sample_rate)
            await out.send(chunk)
        await trio.lowlevel.checkpoint()

    @functools.lru_cache(maxsize=256)  # noqa: B019 - engines live as long as the process
    def chunks(self, text: str) -> tuple[TtsChunk, ...]:
        """`render`'s audio cut into `chunk_ms` chunks with the words that start in each: the
        same chunks every time for the same text (immutable; their arrays are `render`'s)."""
        pcm, marks = self.render(text)
        step = max(1, int(self.sample_rate * self.chunk_ms / 1000))
        return tuple(
            TtsChunk(pcm[at : at + step], tuple(m for m in marks if at <= m.sample < at + step))
            for at in range(0, len(pcm), step)
        )


class RecordingStt(ScriptedStt):
    """A scripted STT that keeps every utterance's audio as its recognizer was fed it (one array
    per feed call), for tests of what reaches the recognizer."""

    def __init__(self, transcripts: Sequence[str] = (), **options: Any) -> None:
        super().__init__(transcripts, **options)  # ScriptedStt's own options
        self.fed: list[list[Int16Array]] = []

    def recognizer(self) -> Recognizer:
        engine = self

        class Recording(ScriptedRecognizer):
            async def start_utterance(self) -> None:
                engine.fed.append([])
                await super().start_utterance()

            async def feed(self, pcm: Int16Array) -> str | None:
                engine.fed[-1].append(pcm.copy())
                return await super().feed(pcm)

        return Recording(self)
