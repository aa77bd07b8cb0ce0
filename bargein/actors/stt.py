"""Speech recognition actor: keeps a pre-roll of recent audio, feeds each utterance (from the
VAD's onset to its offset) to the engine in small batches, and reports transcripts."""

from __future__ import annotations

from collections import deque
from typing import Any

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

from .end_of_turn import AskTurn
from .floor import FloorInput, InputEnded
from .vad import EndOfInput, VadOutput


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
        if not self.batch:
            return
        pcm = np.concatenate(self.batch)
        self.batch = []
        if not self.open:
            return
        partial = await self._call(self.recognizer.feed(pcm))
        if isinstance(partial, str) and partial:
            self.bus.emit(
                EventType.TRANSCRIPT_PARTIAL,
                utterance=self.id,
                text=str(partial),
                **_confidence(partial),
            )
            # The text goes on as the engine gave it: a `Hypothesis` keeps its confidences.
            await self.floor.send(Transcript(self.id, partial, final=False))

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


async def run_stt(
    engine: SttEngine,
    audio: trio.MemoryReceiveChannel[VadOutput],
    floor: trio.MemorySendChannel[FloorInput],
    bus: EventBus,
    *,
    preroll_ms: int,
    batch_ms: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    recognizer = engine.recognizer()
    utt = _Utterances(recognizer, bus, floor)
    ring: deque[AudioFrame] = deque()
    batched = 0
    task_status.started()
    try:
        async with audio, floor:
            async for item in audio:
                if isinstance(item, tuple):  # a batch of frames from the front end
                    for frame in item:
                        if utt.in_speech:
                            utt.batch.append(frame.pcm)
                            batched += len(frame.pcm)
                            if batched * 1000 >= batch_ms * frame.rate:
                                batched = 0
                                await utt.feed()
                        else:
                            ring.append(frame)
                    if ring:
                        # Keep enough to cover the VAD's decision lag plus the pre-roll.
                        keep = (preroll_ms + _VAD_LAG_MS) * ring[-1].rate
                        while ring and (ring[-1].end - ring[0].start) * 1000 > keep:
                            ring.popleft()
                elif isinstance(item, SpeechStarted):
                    # The VAD decides some time after the onset; hand over the audio since then.
                    rate = ring[-1].rate if ring else 16000
                    first = int((item.onset - preroll_ms / 1000) * rate)
                    await utt.start([f.pcm for f in ring if f.end > first])
                    ring.clear()
                    batched = 0
                elif isinstance(item, AskTurn):
                    if utt.in_speech:  # the end-of-turn model was asked: feed the pause now
                        batched = 0
                        await utt.feed()
                elif isinstance(item, SpeechStopped):
                    await utt.finish()
                elif isinstance(item, EndOfInput):
                    if utt.in_speech:
                        await utt.finish()
                    await floor.send(InputEnded())
                    return
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(1.0):
            await recognizer.aclose()
