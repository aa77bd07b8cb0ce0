"""Immutable messages that actors pass to each other over memory channels."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Int16Array = npt.NDArray[np.int16]

# Sample rates a session (and so the wire protocol) accepts for input and output audio.
SUPPORTED_RATES = frozenset({8000, 16000, 22050, 24000, 32000, 44100, 48000})


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """A fixed-size frame of 16 kHz mono PCM16; `start` is its first sample's media index."""

    pcm: Int16Array
    start: int
    rate: int
    level_dbfs: float = -120.0

    @property
    def end(self) -> int:
        return self.start + len(self.pcm)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """VAD onset; `onset` is the media time (s) of the first speech frame, `at` of the decision."""

    onset: float
    at: float


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """VAD offset; `offset` is the media time (s) the speech ended, `at` of the decision."""

    offset: float
    at: float


@dataclass(frozen=True, slots=True)
class VoiceActivity:
    """Within an utterance, the voice paused (`active` False) or came back; `at` is media time.

    The floor uses it to judge how long an interruption has really been speaking, which the
    hang-over of `SpeechStopped` would otherwise hide."""

    active: bool
    at: float


@dataclass(frozen=True, slots=True)
class VoiceLevels:
    """Mic → floor, for policies that listen to levels (`InterruptionPolicy.hears_levels`):
    the analysis frames heard while the VAD hears speech (and its onset window), once per STT
    batch. `levels[i]` is the dBFS of the frame ending at media time `start + (i + 1) *
    frame_s`; `shapes` (frames x 16, when side talk is judged) their spectral shapes
    (`bargein.decide.side_talk.frame_shapes`); `at` is the media time of the newest capture."""

    start: float
    frame_s: float
    levels: tuple[float, ...]
    at: float
    shapes: npt.NDArray[np.float32] | None = None

    def frame_ends(self) -> list[float]:
        return [self.start + (i + 1) * self.frame_s for i in range(len(self.levels))]


@dataclass(frozen=True, slots=True)
class Transcript:
    utterance: int
    text: str
    final: bool


@dataclass(frozen=True, slots=True)
class WordMark:
    """A word of assistant speech and its span in the turn's output samples [start, end)."""

    text: str
    start: int
    end: int
    sentence: int = 0
    ends_sentence: bool = False


@dataclass(frozen=True, slots=True)
class OutFrame:
    """An output frame of a turn at the transport's rate; `start` counts samples in the turn."""

    turn: int
    pcm: Int16Array
    start: int
    words: tuple[WordMark, ...] = ()

    @property
    def end(self) -> int:
        return self.start + len(self.pcm)
