"""Voice activity: webrtcvad per frame, then onset / hang-over hysteresis in a pure core."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import trio
import webrtcvad

from bargein.actors.floor import FloorInput
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.messages import AudioFrame, SpeechStarted, SpeechStopped, VoiceActivity

SpeechEvent = SpeechStarted | SpeechStopped | VoiceActivity


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Onset needs `start_ms` of mostly-speech frames; offset needs `stop_ms` of silence.

    `stop_ms` is the endpointing silence: it dominates response latency and decides whether a
    mid-sentence pause ends the user's turn.
    """

    aggressiveness: int = 2
    start_ms: int = 160
    stop_ms: int = 480
    min_level_dbfs: float = -55.0
    # Fraction of the onset window that must be speech (tolerates webrtcvad flicker).
    start_ratio: float = 0.75

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError("aggressiveness must be 0..3")
        if self.start_ms <= 0 or self.stop_ms <= 0:
            raise ValueError("start_ms and stop_ms must be positive")


class VadCore:
    """Pure hysteresis over per-frame speech flags. Feed frames, get speech events."""

    def __init__(self, config: VadConfig, rate: int, frame_samples: int) -> None:
        self.config = config
        self.rate = rate
        frame_ms = 1000 * frame_samples / rate
        self._window = max(1, round(config.start_ms / frame_ms))
        self._stop_frames = max(1, round(config.stop_ms / frame_ms))
        self._recent: deque[tuple[bool, int]] = deque(maxlen=self._window)
        self._silent_run = 0
        self._silence_start = 0
        self.speaking = False

    def feed(self, is_speech: bool, level_dbfs: float, start: int, n: int) -> SpeechEvent | None:
        voiced = is_speech and level_dbfs >= self.config.min_level_dbfs
        end_t = (start + n) / self.rate
        if not self.speaking:
            self._recent.append((voiced, start))
            hits = sum(1 for v, _ in self._recent if v)
            if len(self._recent) == self._window and hits >= self.config.start_ratio * self._window:
                first = next(s for v, s in self._recent if v)
                self.speaking = True
                self._silent_run = 0
                self._recent.clear()
                return SpeechStarted(onset=first / self.rate, at=end_t)
            return None
        if voiced:
            resumed = self._silent_run > 0
            self._silent_run = 0
            return VoiceActivity(True, start / self.rate) if resumed else None
        self._silent_run += 1
        if self._silent_run == 1:
            self._silence_start = start
        if self._silent_run >= self._stop_frames:
            return self._stop(end_t)
        return VoiceActivity(False, start / self.rate) if self._silent_run == 1 else None

    def end_of_input(self, at_sample: int) -> SpeechStopped | None:
        """Input ended: an utterance still open stops where the audio stopped."""
        if not self.speaking:
            return None
        if self._silent_run == 0:
            self._silence_start = at_sample
        return self._stop(at_sample / self.rate)

    def _stop(self, at: float) -> SpeechStopped:
        self.speaking = False
        self._silent_run = 0
        return SpeechStopped(offset=self._silence_start / self.rate, at=at)


class EndOfInput:
    """Marker that flows down the audio chain when the caller ends the input."""

    __slots__ = ()


END_OF_INPUT = EndOfInput()

VadOutput = AudioFrame | SpeechStarted | SpeechStopped | EndOfInput


async def run_vad(
    config: VadConfig,
    frames: trio.MemoryReceiveChannel[AudioFrame | EndOfInput],
    to_stt: trio.MemorySendChannel[VadOutput],
    to_floor: trio.MemorySendChannel[FloorInput],
    bus: EventBus,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    vad = webrtcvad.Vad(config.aggressiveness)
    core: VadCore | None = None
    task_status.started()
    last_end = 0
    async with frames, to_stt, to_floor:
        async for frame in frames:
            if isinstance(frame, EndOfInput):
                stopped = core.end_of_input(last_end) if core else None
                if stopped is not None:
                    await _report(stopped, to_stt, to_floor, bus)
                await to_stt.send(frame)
                return
            if core is None:
                core = VadCore(config, frame.rate, len(frame.pcm))
            last_end = frame.end
            flag = vad.is_speech(frame.pcm.tobytes(), frame.rate)
            event = core.feed(flag, frame.level_dbfs, frame.start, len(frame.pcm))
            # Frames go first so STT's pre-roll holds the onset audio before it hears the onset.
            await to_stt.send(frame)
            if isinstance(event, VoiceActivity):
                await to_floor.send(event)
            elif event is not None:
                await _report(event, to_stt, to_floor, bus)


async def _report(
    event: SpeechStarted | SpeechStopped,
    to_stt: trio.MemorySendChannel[VadOutput],
    to_floor: trio.MemorySendChannel[FloorInput],
    bus: EventBus,
) -> None:
    if isinstance(event, SpeechStarted):
        bus.emit(EventType.SPEECH_STARTED, onset=round(event.onset, 4), media_t=round(event.at, 4))
    else:
        # When the user stopped, on the session clock: the decision is now, `at - offset`
        # (the hang-over) after the end of the last voiced frame.
        speech_end = bus.now() - (event.at - event.offset)
        bus.emit(
            EventType.SPEECH_STOPPED,
            offset=round(event.offset, 4),
            media_t=round(event.at, 4),
            speech_end=round(speech_end, 6),
        )
    await to_floor.send(event)
    await to_stt.send(event)
