"""Voice activity: webrtcvad per frame, then onset / hang-over hysteresis in a pure core."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import webrtcvad

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
        self._hits = 0  # voiced frames in `_recent`
        self._silent_run = 0
        self._silence_start = 0
        self.speaking = False

    def feed(self, is_speech: bool, level_dbfs: float, start: int, n: int) -> SpeechEvent | None:
        voiced = is_speech and level_dbfs >= self.config.min_level_dbfs
        end_t = (start + n) / self.rate
        if not self.speaking:
            recent = self._recent
            if len(recent) == self._window:
                self._hits -= recent[0][0]  # the append below pushes the oldest out
            recent.append((voiced, start))
            self._hits += voiced  # a running count: no sum over the window per frame
            if len(recent) == self._window and self._hits >= self.config.start_ratio * self._window:
                first = next(s for v, s in recent if v)
                self.speaking = True
                self._silent_run = 0
                recent.clear()
                self._hits = 0
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

# The audio front end hands STT its frames in batches (one channel hop per batch, not per
# frame), and the speech events between them, in media order.
FrameBatch = tuple[AudioFrame, ...]
VadOutput = FrameBatch | SpeechStarted | SpeechStopped | EndOfInput


class VadStage:
    """webrtcvad's per-frame flag through the hysteresis core: frame in, speech event out.
    Synchronous, so the mic task runs it inline (a task hop per frame buys nothing)."""

    def __init__(self, config: VadConfig) -> None:
        self.config = config
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._core: VadCore | None = None
        self._last_end = 0

    def feed(self, frame: AudioFrame) -> SpeechEvent | None:
        if self._core is None:
            self._core = VadCore(self.config, frame.rate, len(frame.pcm))
        self._last_end = frame.end
        flag = self._vad.is_speech(frame.pcm.tobytes(), frame.rate)
        return self._core.feed(flag, frame.level_dbfs, frame.start, len(frame.pcm))

    def end_of_input(self) -> SpeechStopped | None:
        return self._core.end_of_input(self._last_end) if self._core else None


def report(event: SpeechStarted | SpeechStopped, bus: EventBus) -> None:
    """The bus event for an onset or an offset."""
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
