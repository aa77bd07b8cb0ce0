"""Speech recognition actor: keeps a pre-roll of recent audio, feeds each utterance (from the
VAD's onset to its offset) to the engine in small batches, and reports transcripts.

What needs no wait (a batch outside speech; in speech, a batch for a recognizer with
`feed_nowait`) is handled in the run's shared step while the task waits (`stt_inbox`); the task
handles the rest, in order."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import trio

from bargein.engines.base import Recognizer, SttEngine, word_confidences
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.messages import (
    AudioFrame,
    Int16Array,
    SpeechStarted,
    SpeechStopped,
    Transcript,
)
from bargein.runtime.shared_steps import shared_steps

from .end_of_turn import AskTurn
from .floor import FloorInput, InputEnded
from .stt_inbox import SttInbox
from .vad import EndOfInput, VadOutput


class SyncFeed(Protocol):
    """A recognizer that takes audio without waiting may also have `feed_nowait`: `feed`'s
    work, synchronously (it must not block). STT then feeds it in the run's shared step
    instead of waking its task for every batch (`stt_inbox`). None there: it has none."""

    def feed_nowait(self, pcm: Int16Array) -> str | None: ...


class _Utterances:
    def __init__(
        self, recognizer: Recognizer, bus: EventBus, floor: trio.MemorySendChannel[FloorInput]
    ):
        self.recognizer = recognizer
        self.bus = bus
        self.floor = floor
        self.id = 0
        self.in_speech = False
        self.open = False
        self.batch: list[Int16Array] = []

    async def start(self, preroll: list[Int16Array]) -> None:
        self.id += 1
        self.in_speech = True
        self.open = await self._call(self.recognizer.start_utterance()) is not _FAILED
        self.batch = list(preroll)

    async def feed(self) -> None:
        pcm = self._take()
        if pcm is None:
            return
        transcript = self._partial(await self._call(self.recognizer.feed(pcm)))
        if transcript is not None:
            await self.floor.send(transcript)

    def feed_nowait(self, feed: Callable[[Int16Array], str | None] | None) -> None:
        """`feed` with the recognizer's `feed_nowait`; the caller made sure the floor has room
        (and that there is a `feed_nowait` while the utterance is open)."""
        pcm = self._take()
        if pcm is None:
            return
        assert feed is not None
        try:
            result: Any = feed(pcm)
        except Exception as exc:  # as `_call`: this utterance is lost, not the session
            self.bus.error("stt", exc, fatal=False, utterance=self.id)
            self.open = False
            result = _FAILED
        transcript = self._partial(result)
        if transcript is not None:
            self.floor.send_nowait(transcript)

    def _take(self) -> Int16Array | None:
        if not self.batch:
            return None
        pcm = np.concatenate(self.batch)
        self.batch = []
        return pcm if self.open else None

    def _partial(self, partial: Any) -> Transcript | None:
        if not (isinstance(partial, str) and partial):
            return None
        self.bus.emit(
            EventType.TRANSCRIPT_PARTIAL,
            utterance=self.id,
            text=str(partial),
            **_confidence(partial),
        )
        # The text goes on as the engine gave it: a `Hypothesis` keeps its confidences.
        return Transcript(self.id, partial, final=False)

    async def finish(self) -> None:
        await self.feed()
        text = ""
        if self.open:
            result = await self._call(self.recognizer.end_utterance())
            text = result.strip() if isinstance(result, str) else ""
        self.open = self.in_speech = False
        self.bus.emit(
            EventType.TRANSCRIPT_FINAL, utterance=self.id, text=str(text), **_confidence(text)
        )
        await self.floor.send(Transcript(self.id, text, final=True))

    async def _call(self, call: Any) -> Any:
        try:
            return await call
        except Exception as exc:  # a failing engine loses this utterance, not the session
            self.bus.error("stt", exc, fatal=False, utterance=self.id)
            self.open = False
            return _FAILED


def _confidence(text: str) -> dict[str, Any]:
    """The trace's `confidence` field: each word's, when the recognizer gave them."""
    words = word_confidences(text)
    return {} if words is None else {"confidence": [round(w.confidence, 3) for w in words]}


_FAILED = object()
_VAD_LAG_MS = 1000


class _Stt:
    """The STT actor's state: the pre-roll ring, the open utterance, the batch being filled.
    `handle` is the task's way through an item; `handle_nowait` the shared step's, for the
    items that need no wait (see `stt_inbox`)."""

    def __init__(
        self, recognizer: Recognizer, bus: EventBus, floor: trio.MemorySendChannel[FloorInput],
        *, preroll_ms: int, batch_ms: int,
    ) -> None:
        self.utt = _Utterances(recognizer, bus, floor)
        self._floor = floor
        self._feed_nowait: Callable[[Int16Array], str | None] | None = getattr(
            recognizer, "feed_nowait", None
        )
        self._preroll_ms = preroll_ms
        self._batch_ms = batch_ms
        self._ring: deque[AudioFrame] = deque()
        self._batched = 0

    def handle_nowait(self, item: VadOutput) -> bool:
        """Handle a batch of frames if that needs no wait: outside speech (the ring), or in
        speech with a recognizer that has `feed_nowait` and a floor with room for a partial.
        False: nothing was touched, the task handles it."""
        if not isinstance(item, tuple):
            return False
        utt, feed = self.utt, self._feed_nowait
        if utt.in_speech and utt.open:
            if feed is None:
                return False
            stats = self._floor.statistics()
            if stats.current_buffer_used >= stats.max_buffer_size:
                return False
        for frame in item:
            if self._add(frame):
                utt.feed_nowait(feed)
        self._trim()
        return True

    async def handle(self, item: VadOutput) -> bool:
        """One item by the task; True at the end of input (the actor is done)."""
        utt = self.utt
        if isinstance(item, tuple):  # a batch of frames from the front end
            for frame in item:
                if self._add(frame):
                    await utt.feed()
            self._trim()
        elif isinstance(item, SpeechStarted):
            # The VAD decides some time after the onset; hand over the audio since then.
            ring = self._ring
            rate = ring[-1].rate if ring else 16000
            first = int((item.onset - self._preroll_ms / 1000) * rate)
            await utt.start([f.pcm for f in ring if f.end > first])
            ring.clear()
            self._batched = 0
        elif isinstance(item, AskTurn):
            if utt.in_speech:  # the end-of-turn model was asked: feed the pause now
                self._batched = 0
                await utt.feed()
        elif isinstance(item, SpeechStopped):
            await utt.finish()
        elif isinstance(item, EndOfInput):
            if utt.in_speech:
                await utt.finish()
            await self._floor.send(InputEnded())
            return True
        return False

    def _add(self, frame: AudioFrame) -> bool:
        """Take one frame; True if the utterance's batch is now due for the recognizer."""
        if not self.utt.in_speech:
            self._ring.append(frame)
            return False
        self.utt.batch.append(frame.pcm)
        self._batched += len(frame.pcm)
        if self._batched * 1000 >= self._batch_ms * frame.rate:
            self._batched = 0
            return True
        return False

    def _trim(self) -> None:
        ring = self._ring
        if ring:
            # Keep enough to cover the VAD's decision lag plus the pre-roll.
            keep = (self._preroll_ms + _VAD_LAG_MS) * ring[-1].rate
            while ring and (ring[-1].end - ring[0].start) * 1000 > keep:
                ring.popleft()


async def run_stt(
    engine: SttEngine,
    audio: SttInbox | trio.MemoryReceiveChannel[VadOutput],
    floor: trio.MemorySendChannel[FloorInput],
    bus: EventBus,
    *,
    preroll_ms: int,
    batch_ms: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    recognizer = engine.recognizer()
    stt = _Stt(recognizer, bus, floor, preroll_ms=preroll_ms, batch_ms=batch_ms)
    steps = shared_steps()
    if isinstance(audio, SttInbox):
        steps.attach()  # the inline steps run in the shared task: it stays while STT does
        audio.handle_inline(stt.handle_nowait)
    task_status.started()
    try:
        async with floor:
            try:
                async for item in audio:
                    if await stt.handle(item):
                        return
            finally:
                if isinstance(audio, SttInbox):
                    audio.close_receiver()
                    steps.detach()
                else:
                    audio.close()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await recognizer.aclose()
