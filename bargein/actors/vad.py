"""Voice activity: webrtcvad per frame, then onset / hang-over hysteresis in a pure core."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import webrtcvad

from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.messages import (
    AudioFrame,
    Int16Array,
    SpeechStarted,
    SpeechStopped,
    VoiceActivity,
)

from .end_of_turn import AskTurn, EndOfTurnCore, TurnVerdict

SpeechEvent = SpeechStarted | SpeechStopped | VoiceActivity
# One Smart Turn decision's virtual-clock charge: the p95 of its measured CPU time here (56-60 ms
# over runs, p50 53-55; docs/turn_detection.md), so the virtual clock does not charge a decision
# less than it nearly always costs on an idle core; not a multiple of 10 ms, so a verdict never
# wakes at the same virtual instant as a 10/20 ms audio chunk (trio orders those at random).
TURN_CHARGE_MS = 58.0
# webrtcvad's C entry, which `Vad.is_speech` wraps (see `VadStage.feed`).
_vad_process = webrtcvad._webrtcvad.process
EndOfTurnMode = Literal["silence", "smart_turn"]


@dataclass(frozen=True, slots=True)
class VadConfig:
    """Onset needs `start_ms` of mostly-speech frames; offset needs `stop_ms` of silence.

    `stop_ms` is the endpointing silence: it dominates response latency and decides whether a
    mid-sentence pause ends the user's turn.

    `end_of_turn="smart_turn"` asks the learned end-of-turn model (docs/turn_detection.md) once
    `turn_check_ms` of silence follow the last voiced frame: a turn it calls complete
    (P > `turn_threshold`) ends at once, one it calls incomplete ends after `turn_max_ms` of
    silence; without a verdict (the model slow or failing) `stop_ms` still ends it.

    `turn_charge_ms`: on the virtual clock (compute "inline") each decision is charged this
    fixed cost instead of its measured time, so runs of one recording repeat exactly; None
    charges the measured time, as every engine call. The real clock always waits for the model.
    """

    aggressiveness: int = 2
    start_ms: int = 160
    stop_ms: int = 480
    min_level_dbfs: float = -55.0
    # Fraction of the onset window that must be speech (tolerates webrtcvad flicker).
    start_ratio: float = 0.75
    end_of_turn: EndOfTurnMode = "silence"
    turn_check_ms: int = 160
    turn_threshold: float = 0.5
    turn_max_ms: int = 1200
    turn_charge_ms: float | None = TURN_CHARGE_MS

    def __post_init__(self) -> None:
        if not 0 <= self.aggressiveness <= 3:
            raise ValueError("aggressiveness must be 0..3")
        if self.start_ms <= 0 or self.stop_ms <= 0:
            raise ValueError("start_ms and stop_ms must be positive")
        if self.end_of_turn not in ("silence", "smart_turn"):
            raise ValueError("end_of_turn must be 'silence' or 'smart_turn'")
        if not 0.0 < self.turn_threshold < 1.0:
            raise ValueError("turn_threshold must be in (0, 1)")
        charge = self.turn_charge_ms
        if charge is not None and (
            isinstance(charge, bool)
            or not isinstance(charge, int | float)
            or not 0 <= charge <= 10000  # NaN fails too
        ):
            raise ValueError(f"turn_charge_ms must be None or a number in 0..10000, got {charge!r}")
        if self.end_of_turn == "smart_turn" and not (
            0 < self.turn_check_ms < self.stop_ms <= self.turn_max_ms <= 10000
        ):
            raise ValueError(
                "smart_turn needs 0 < turn_check_ms < stop_ms <= turn_max_ms <= 10000"
            )


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

    def end_turn(self, at: float) -> SpeechStopped | None:
        """End the open utterance now (`at`, media time) if it is in a pause: the end-of-turn
        model called it complete. None while the voice is on or outside an utterance."""
        if not self.speaking or self._silent_run == 0:
            return None
        return self._stop(at)

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
# An `AskTurn` tells STT the end-of-turn model was asked: the recognizer gets its batch now,
# so a speculative final can run beside the model.
VadOutput = FrameBatch | SpeechStarted | SpeechStopped | EndOfInput | AskTurn
# What the mic task reads: the transport's chunks, the end of input, and the end-of-turn
# model's verdicts (queued behind the audio that arrived while the model ran).
MicInput = Int16Array | EndOfInput | TurnVerdict


class VadStage:
    """webrtcvad's per-frame flag through the hysteresis core: frame in, speech event out.
    Synchronous, so the mic task runs it inline (a task hop per frame buys nothing).

    With `smart_turn` (the config asks for it and the model loaded) the utterance's end is
    decided by `EndOfTurnCore`: `feed` may also return an `AskTurn` for the model, whose
    `TurnVerdict` goes to `verdict`."""

    def __init__(self, config: VadConfig, *, smart_turn: bool = False) -> None:
        self.config = config
        self.smart_turn = smart_turn and config.end_of_turn == "smart_turn"
        self._vad = webrtcvad.Vad(config.aggressiveness)
        self._handle = self._vad._vad
        self._core: VadCore | None = None
        self._turns: EndOfTurnCore | None = None
        self._last_end = 0
        self._how = "silence"  # how the silence core's last utterance ended

    def feed(self, frame: AudioFrame) -> SpeechEvent | AskTurn | None:
        if self._core is None:
            self._start(frame.rate, len(frame.pcm))
        assert self._core is not None
        pcm = frame.pcm
        n = len(pcm)
        self._last_end = frame.start + n
        # webrtcvad's own entry, given the array's buffer: `Vad.is_speech` would add a Python
        # call and a bytes copy per 20 ms frame (the frame is a C-contiguous int16 array).
        flag = _vad_process(self._handle, frame.rate, pcm, n)
        if self._turns is not None:
            return self._turns.feed(flag, frame)
        return self._core.feed(flag, frame.level_dbfs, frame.start, n)

    def _start(self, rate: int, frame_samples: int) -> None:
        if not self.smart_turn:
            self._core = VadCore(self.config, rate, frame_samples)
            return
        # The hysteresis core's own hang-over becomes the longest wait (a turn the model
        # called incomplete); the end-of-turn core ends turns earlier.
        core = VadCore(dataclasses.replace(self.config, stop_ms=self.config.turn_max_ms),
                       rate, frame_samples)
        self._core = core
        self._turns = EndOfTurnCore(core, self.config, rate, frame_samples)

    def verdict(
        self, verdict: TurnVerdict, media_now: float, *, hold: bool = True
    ) -> SpeechStopped | None:
        """The model's answer; `media_now` is the media time it arrived (the last frame's end
        plus the time since that frame); `hold` as in `EndOfTurnCore.verdict`."""
        if self._turns is None:
            return None
        return self._turns.verdict(verdict, media_now, hold=hold)

    def asking(self, ask: int) -> bool:
        """Is this request still wanted (the user has not resumed since it was made)?"""
        return self._turns is not None and self._turns.pending == ask

    def end_of_input(self) -> SpeechStopped | None:
        if self._turns is not None:
            return self._turns.end_of_input(self._last_end)
        self._how = "input_ended"
        return self._core.end_of_input(self._last_end) if self._core else None

    def report(self, event: SpeechStarted | SpeechStopped, bus: EventBus) -> None:
        """The bus event for an onset or an offset."""
        if isinstance(event, SpeechStarted):
            bus.emit(
                EventType.SPEECH_STARTED, onset=round(event.onset, 4), media_t=round(event.at, 4)
            )
            return
        # When the user stopped, on the session clock: the decision is now, `at - offset`
        # (the hang-over) after the end of the last voiced frame.
        speech_end = bus.now() - (event.at - event.offset)
        how: Mapping[str, Any] = (
            self._turns.last_stop if self._turns is not None else {"end_of_turn": self._how}
        )
        bus.emit(
            EventType.SPEECH_STOPPED,
            offset=round(event.offset, 4),
            media_t=round(event.at, 4),
            speech_end=round(speech_end, 6),
            **how,
        )
