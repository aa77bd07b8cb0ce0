"""End of turn by meaning, the pure part: when to ask the learned end-of-turn model, and what its
verdict does to the utterance the VAD holds open.

`EndOfTurnCore` wraps the VAD's hysteresis core (`VadCore`, built by `VadStage` with the
longest wait, `turn_max_ms`, as its own hang-over) and decides the end of each pause:

- `turn_check_ms` of silence after the last voiced frame: ask the model once for this pause
  (`AskTurn`, with the utterance's audio up to now, at most the model's 8 s window);
- verdict *complete* (P > `turn_threshold`) while the user is still silent: the utterance ends
  at once;
- verdict *incomplete*: keep waiting; `turn_max_ms` of silence ends it anyway — unless the
  caller says not to hold (the user is talking over an assistant turn: whether that speech
  takes the floor is the interruption policy's call, and a backchannel must end promptly),
  then `stop_ms` ends it as without the model;
- no verdict yet, or the model failed: `stop_ms` of silence ends it, as without the model;
- the voice comes back: the pending request is discarded (its verdict, if it still arrives, is
  stale and ignored) and the next pause asks again.

Time is media time (frames and the caller's `media_now`), so it runs the same under any clock.
The model call itself lives in `bargein.actors.turn_model`.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from bargein.runtime.messages import (
    AudioFrame,
    Int16Array,
    SpeechStarted,
    SpeechStopped,
    VoiceActivity,
)

if TYPE_CHECKING:
    from .vad import VadConfig, VadCore

MODEL_WINDOW_S = 8.0  # Smart Turn looks at the last 8 s
_EPSILON = 1e-9


@dataclass(frozen=True, slots=True)
class AskTurn:
    """A request for the model: is the utterance whose audio this is complete?"""

    id: int
    audio: Int16Array  # from the utterance's onset, at most MODEL_WINDOW_S, ending at `at`
    rate: int
    at: float  # media time of the audio's end


@dataclass(frozen=True, slots=True)
class TurnVerdict:
    """The model's answer to `AskTurn` `id`; `probability` None when the model failed."""

    id: int
    probability: float | None
    cpu_ms: float = 0.0


class _Pause(enum.Enum):
    WAITING = "waiting"  # not asked yet in this pause
    PENDING = "pending"  # asked, no verdict
    INCOMPLETE = "incomplete"  # held to turn_max_ms
    UNHELD = "unheld"  # incomplete, but not held: stop_ms
    FAILED = "failed"


class EndOfTurnCore:
    """Pure: feed frames (with their webrtcvad flag) and verdicts, get speech events and
    requests. Counters in `stats`; how the last utterance ended in `last_stop`."""

    def __init__(self, core: VadCore, config: VadConfig, rate: int, frame_samples: int) -> None:
        self._core = core
        self.rate = rate
        self._check = config.turn_check_ms / 1000
        self._fallback = config.stop_ms / 1000
        self._threshold = config.turn_threshold
        self._window = int(MODEL_WINDOW_S * rate)
        self._frames: deque[AudioFrame] = deque(maxlen=self._window // frame_samples + 1)
        self._utterance_start = 0  # sample of the onset
        self._silence_start: int | None = None
        self._pause = _Pause.WAITING
        self._last_end = 0
        self._next_id = 1
        self._probability: float | None = None
        self.pending: int | None = None  # the request awaiting its verdict
        self.last_stop: dict[str, Any] = {"end_of_turn": "silence"}
        self.stats = {
            "asked": 0, "complete": 0, "incomplete": 0, "failed": 0,
            "discarded": 0, "stale": 0,
            "ended_smart_turn": 0, "ended_max_wait": 0, "ended_silence": 0,
        }

    def feed(self, is_speech: bool, frame: AudioFrame) -> (
        SpeechStarted | SpeechStopped | VoiceActivity | AskTurn | None
    ):
        n = len(frame.pcm)
        self._last_end = frame.start + n
        self._frames.append(frame)
        event = self._core.feed(is_speech, frame.level_dbfs, frame.start, n)
        if isinstance(event, SpeechStarted):
            self._utterance_start = round(event.onset * self.rate)
            self._new_pause(None)
            return event
        if isinstance(event, VoiceActivity):
            if event.active:
                if self.pending is not None:
                    self.stats["discarded"] += 1
                self._new_pause(None)
            else:
                self._new_pause(frame.start)
            return event
        if isinstance(event, SpeechStopped):  # the hysteresis core's hang-over: turn_max_ms
            self._ended("max_wait" if self._pause is _Pause.INCOMPLETE else "silence")
            return event
        if self._silence_start is None or not self._core.speaking:
            return None
        silent = (self._last_end - self._silence_start) / self.rate
        if self._pause is _Pause.WAITING and silent >= self._check - _EPSILON:
            return self._ask()
        if (
            self._pause in (_Pause.PENDING, _Pause.FAILED, _Pause.UNHELD)
            and silent >= self._fallback - _EPSILON
        ):
            # No verdict in time (or none at all): silence endpointing, as without the model.
            return self._end("silence", self._last_end / self.rate)
        return None

    def verdict(
        self, verdict: TurnVerdict, media_now: float, *, hold: bool = True
    ) -> SpeechStopped | None:
        """Apply the model's answer, arriving at media time `media_now`; `hold=False`: an
        incomplete verdict does not hold the utterance beyond `stop_ms`."""
        if verdict.id != self.pending:
            self.stats["stale"] += 1  # the user resumed (or the turn ended) meanwhile
            return None
        self.pending = None
        if verdict.probability is None:
            self.stats["failed"] += 1
            self._pause = _Pause.FAILED
            return None
        self._probability = verdict.probability
        if verdict.probability > self._threshold:
            self.stats["complete"] += 1
            return self._end("smart_turn", max(media_now, self._last_end / self.rate))
        self.stats["incomplete"] += 1
        self._pause = _Pause.INCOMPLETE if hold else _Pause.UNHELD
        return None

    def end_of_input(self, at_sample: int) -> SpeechStopped | None:
        stopped = self._core.end_of_input(at_sample)
        if stopped is not None:
            self._ended("input_ended")
        return stopped

    # -- internals ---------------------------------------------------------------------------

    def _ask(self) -> AskTurn:
        first = max(self._utterance_start, self._last_end - self._window)
        parts = [f.pcm for f in self._frames if f.start + len(f.pcm) > first]
        audio = np.concatenate(parts) if parts else np.zeros(0, np.int16)
        head = first - (self._last_end - len(audio))  # the first frame may start before `first`
        if head > 0:
            audio = audio[head:]
        ask = AskTurn(self._next_id, audio, self.rate, self._last_end / self.rate)
        self._next_id += 1
        self.pending = ask.id
        self._pause = _Pause.PENDING
        self.stats["asked"] += 1
        return ask

    def _end(self, how: str, at: float) -> SpeechStopped | None:
        stopped = self._core.end_turn(at)
        if stopped is not None:
            self._ended(how)
        return stopped

    def _ended(self, how: str) -> None:
        stop: dict[str, Any] = {"end_of_turn": how}
        if self._probability is not None:
            stop["turn_probability"] = round(self._probability, 3)
        if how in ("smart_turn", "max_wait", "silence"):
            self.stats[f"ended_{how}"] += 1
        self.last_stop = stop
        self._new_pause(None)

    def _new_pause(self, silence_start: int | None) -> None:
        self._silence_start = silence_start
        self._pause = _Pause.WAITING
        self.pending = None
        self._probability = None
