"""The messages of protocol version 1 as frozen dataclasses (one per `type`), like h11's events."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from bargein.transports.protocol.limits import PROTOCOL_VERSION

Int16Array: TypeAlias = npt.NDArray[np.int16]
OptionValue: TypeAlias = str | int | float | bool


# --------------------------------------------------------------------------- client → server


@dataclass(frozen=True, slots=True)
class SessionStart:
    TYPE: ClassVar[str] = "session.start"
    sample_rate: int
    output_rate: int | None = None  # defaults to sample_rate
    session_id: str | None = None  # resume a conversation
    token: str | None = None
    options: Mapping[str, OptionValue] = field(default_factory=dict)
    resume_secret: str | None = None  # with `session_id`: the secret its `session.started` gave

    @property
    def effective_output_rate(self) -> int:
        """The output rate the session uses: `output_rate`, defaulting to `sample_rate`."""
        return self.output_rate or self.sample_rate


@dataclass(frozen=True, slots=True, eq=False)
class AudioIn:
    """Microphone audio: PCM16 little-endian mono at the session's `sample_rate` (binary frame)."""

    TYPE: ClassVar[str] = "audio"
    pcm: Int16Array


@dataclass(frozen=True, slots=True)
class AudioEnd:
    TYPE: ClassVar[str] = "audio.end"


@dataclass(frozen=True, slots=True)
class Interrupt:
    TYPE: ClassVar[str] = "interrupt"
    turn: int | None = None


@dataclass(frozen=True, slots=True)
class Text:
    TYPE: ClassVar[str] = "text"
    text: str


@dataclass(frozen=True, slots=True)
class Playback:
    """How many samples (output rate) of `turn`'s audio have actually played on the client."""

    TYPE: ClassVar[str] = "playback"
    turn: int
    played_samples: int


ClientMessage: TypeAlias = SessionStart | AudioIn | AudioEnd | Interrupt | Text | Playback

# --------------------------------------------------------------------------- server → client


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One message of the heard conversation; `interrupted` marks a reply cut by a barge-in."""

    role: Literal["user", "assistant"]
    content: str
    interrupted: bool = False


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What this server accepts: rates, the largest audio frame, honoured options, policies."""

    sample_rates: tuple[int, ...]
    max_audio_bytes: int
    options: Mapping[str, str] = field(default_factory=dict)  # name -> what it does
    policies: tuple[str, ...] = ()
    policy_descriptions: Mapping[str, str] = field(default_factory=dict)  # name -> what it does


@dataclass(frozen=True, slots=True)
class SessionStarted:
    TYPE: ClassVar[str] = "session.started"
    session_id: str
    sample_rate: int
    output_rate: int
    protocol: int = PROTOCOL_VERSION
    max_audio_bytes: int = 0
    resumed: bool = False
    t: float | None = None
    # Present the secret with `session_id` to resume this conversation later.
    resume_secret: str | None = None
    history: tuple[HistoryEntry, ...] = ()
    capabilities: Capabilities | None = None
    # The interruption preset this session runs (bargein.presets; None: the runtime defaults).
    policy: str | None = None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    TYPE: ClassVar[str] = "speech.started"
    t: float | None = None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    TYPE: ClassVar[str] = "speech.stopped"
    t: float | None = None
    # When the user actually stopped (end of the last voiced frame, before the VAD hang-over).
    speech_end: float | None = None


@dataclass(frozen=True, slots=True)
class TranscriptPartial:
    TYPE: ClassVar[str] = "transcript.partial"
    text: str
    utterance: int = 0
    t: float | None = None


@dataclass(frozen=True, slots=True)
class TranscriptFinal:
    TYPE: ClassVar[str] = "transcript.final"
    text: str
    utterance: int = 0
    t: float | None = None


@dataclass(frozen=True, slots=True)
class TurnStarted:
    TYPE: ClassVar[str] = "turn.started"
    turn: int
    user_text: str | None = None
    t: float | None = None


@dataclass(frozen=True, slots=True)
class AssistantText:
    TYPE: ClassVar[str] = "assistant.text"
    turn: int
    delta: str
    t: float | None = None


@dataclass(frozen=True, slots=True)
class WordSpan:
    """A spoken word and its samples [start, end) within its turn's audio (output rate)."""

    text: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Words:
    TYPE: ClassVar[str] = "words"
    turn: int
    words: tuple[WordSpan, ...]


@dataclass(frozen=True, slots=True)
class TurnMark:
    """A stamped milestone of a turn (llm_first_token, tts_first_audio, audio_out_first, ...)."""

    TYPE: ClassVar[str] = "turn.mark"
    turn: int
    mark: str
    t: float | None = None


@dataclass(frozen=True, slots=True)
class OutputDucked:
    """User speech over the turn is being judged and its audio is turned down by `depth_db`
    (the samples sent are already ducked; nothing for the client to do)."""

    TYPE: ClassVar[str] = "output.ducked"
    turn: int
    depth_db: float
    t: float | None = None


@dataclass(frozen=True, slots=True)
class OutputRestored:
    """The speech over the turn was not an interruption (`text`: what it was): its audio ramps
    back to full level after `ducked_ms`."""

    TYPE: ClassVar[str] = "output.restored"
    turn: int
    text: str
    ducked_ms: int
    t: float | None = None


@dataclass(frozen=True, slots=True)
class StatusMessage:
    TYPE: ClassVar[str] = "status"
    kind: str
    text: str
    turn: int | None = None
    tool: str | None = None
    t: float | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    """Flush any queued playback of `turn` now."""

    TYPE: ClassVar[str] = "clear"
    turn: int
    t: float | None = None


@dataclass(frozen=True, slots=True)
class TurnEnded:
    TYPE: ClassVar[str] = "turn.ended"
    turn: int
    status: Literal["completed", "interrupted"]
    heard: str
    heard_ms: int
    t: float | None = None


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    TYPE: ClassVar[str] = "error"
    code: str
    message: str
    fatal: bool = False


@dataclass(frozen=True, slots=True)
class SessionEnded:
    TYPE: ClassVar[str] = "session.ended"
    reason: str
    t: float | None = None


@dataclass(frozen=True, slots=True, eq=False)
class AudioOut:
    """Assistant audio (binary frame): `pcm` at the output rate, `start` = sample within `turn`."""

    TYPE: ClassVar[str] = "audio"
    turn: int
    start: int
    pcm: Int16Array

    @property
    def end(self) -> int:
        return self.start + len(self.pcm)


ServerMessage: TypeAlias = (
    SessionStarted
    | SpeechStarted
    | SpeechStopped
    | TranscriptPartial
    | TranscriptFinal
    | TurnStarted
    | AssistantText
    | Words
    | TurnMark
    | OutputDucked
    | OutputRestored
    | StatusMessage
    | Clear
    | TurnEnded
    | ErrorMessage
    | SessionEnded
    | AudioOut
)
