"""The bargein wire protocol, version 1: a pure codec (no I/O, no trio), as h11/wsproto do it.

One WebSocket per session. Text frames carry JSON control messages and events, binary frames carry
audio. Feed received frames to `ServerProtocol.receive` / `ClientProtocol.receive` and get typed
messages back or a `RemoteProtocolError` with a stable `ErrorCode`; hand typed messages to `send`
and get the frame (``str`` or ``bytes``) to write, or a `LocalProtocolError` if *we* are about to
break the protocol (a bug on our side, never the peer's). docs/protocol.md is the reference.

Every outgoing control message is validated by the same parser the peer will run on it, so a
frame this module produces is one the other side accepts.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import re
import struct
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, Literal, NoReturn, TypeAlias

import numpy as np
import numpy.typing as npt

from bargein.runtime.messages import SUPPORTED_RATES

PROTOCOL_VERSION: Final = 1

# A control frame bigger than this is rejected before parsing (counted in characters).
MAX_TEXT_FRAME_CHARS: Final = 65_536
# Typed user input (`text`).
MAX_INPUT_TEXT_CHARS: Final = 4_000
# Text the server sends inside one message (transcripts, deltas, heard text).
MAX_SERVER_TEXT_CHARS: Final = 20_000
# One binary audio frame holds at most one second of audio at its declared rate; the page sends
# 20 ms. The limit keeps a client from parking megabytes in one frame.
MAX_AUDIO_SECONDS: Final = 1.0
MAX_TOKEN_CHARS: Final = 4_096
MAX_OPTIONS: Final = 16
MAX_OPTION_KEY_CHARS: Final = 64
MAX_OPTION_VALUE_CHARS: Final = 1_000
MAX_WORDS_PER_MESSAGE: Final = 256
UINT32_MAX: Final = 2**32 - 1
# After this many rejected frames the connection is not worth keeping.
DEFAULT_MAX_REJECTIONS: Final = 100
# How many recent turns the server remembers sent-sample counts for (to check `playback`).
_TRACKED_TURNS: Final = 64

# Server → client audio frame header: kind (1 = PCM16 audio), flags (0), reserved (0),
# turn, start sample within the turn. 12 bytes keeps the PCM that follows 4-byte aligned, so
# the page can view it as an Int16Array in place.
AUDIO_HEADER: Final = struct.Struct("<BBHII")
AUDIO_KIND_PCM16: Final = 1

_SESSION_ID_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,64}")
_NAME_RE: Final = re.compile(r"[a-z][a-z0-9_.]{0,39}")

Int16Array: TypeAlias = npt.NDArray[np.int16]
OptionValue: TypeAlias = str | int | float | bool


class ErrorCode(enum.StrEnum):
    """Stable error codes. The first group is what the codec rejects; the second the server adds."""

    BAD_JSON = "bad_json"
    NOT_OBJECT = "not_object"
    MISSING_TYPE = "missing_type"
    UNKNOWN_TYPE = "unknown_type"
    BAD_VERSION = "bad_version"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    BAD_SAMPLE_RATE = "bad_sample_rate"
    NOT_STARTED = "not_started"
    ALREADY_STARTED = "already_started"
    INPUT_ENDED = "input_ended"
    EMPTY_FRAME = "empty_frame"
    ODD_LENGTH = "odd_length"
    FRAME_TOO_LARGE = "frame_too_large"
    BAD_AUDIO_HEADER = "bad_audio_header"
    EMPTY_TEXT = "empty_text"
    TEXT_TOO_LONG = "text_too_long"
    UNKNOWN_TURN = "unknown_turn"
    PLAYBACK_AHEAD = "playback_ahead"
    CLOSED = "closed"
    TOO_MANY_ERRORS = "too_many_errors"
    # Raised by the server application rather than the codec.
    UNAUTHORIZED = "unauthorized"
    UNKNOWN_SESSION = "unknown_session"
    SERVER_BUSY = "server_busy"
    SLOW_CONSUMER = "slow_consumer"
    SESSION_FAILED = "session_failed"
    ENGINE_ERROR = "engine_error"
    SHUTTING_DOWN = "shutting_down"
    INTERNAL = "internal"


class ProtocolError(Exception):
    """A protocol violation with a stable code; `fatal` means the connection must close."""

    def __init__(self, code: ErrorCode, message: str, *, fatal: bool = False) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.fatal = fatal


class RemoteProtocolError(ProtocolError):
    """The peer sent something invalid: reply with an `Error` frame and count it."""


class LocalProtocolError(ProtocolError):
    """We were about to send something invalid: a bug on this side, never the peer's fault."""


class _Invalid(Exception):
    # Raised by the parsers; the caller decides whether it is local or remote.
    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# --------------------------------------------------------------------------- client → server


@dataclass(frozen=True, slots=True)
class SessionStart:
    TYPE: ClassVar[str] = "session.start"
    sample_rate: int
    output_rate: int | None = None  # defaults to sample_rate
    session_id: str | None = None  # resume a conversation
    token: str | None = None
    options: Mapping[str, OptionValue] = field(default_factory=dict)

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
class SessionStarted:
    TYPE: ClassVar[str] = "session.started"
    session_id: str
    sample_rate: int
    output_rate: int
    protocol: int = PROTOCOL_VERSION
    max_audio_bytes: int = 0
    resumed: bool = False
    t: float | None = None


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    TYPE: ClassVar[str] = "speech.started"
    t: float | None = None


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    TYPE: ClassVar[str] = "speech.stopped"
    t: float | None = None


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
    | StatusMessage
    | Clear
    | TurnEnded
    | ErrorMessage
    | SessionEnded
    | AudioOut
)

# --------------------------------------------------------------------------- field parsers


def _fail(code: ErrorCode, message: str) -> NoReturn:
    raise _Invalid(code, message)


def _get(obj: Mapping[str, Any], key: str, required: bool) -> Any:
    if key not in obj or obj[key] is None:
        if required:
            _fail(ErrorCode.MISSING_FIELD, f"missing field {key!r}")
        return None
    return obj[key]


def _int(
    obj: Mapping[str, Any], key: str, *, lo: int = 0, hi: int = UINT32_MAX, required: bool = True
) -> Any:
    value = _get(obj, key, required)
    if value is None:
        return None
    # bool is an int subclass; `true` is not a sample count.
    if not isinstance(value, int) or isinstance(value, bool):
        _fail(ErrorCode.BAD_FIELD, f"{key!r} must be an integer")
    if not lo <= value <= hi:
        _fail(ErrorCode.BAD_FIELD, f"{key!r} must be in [{lo}, {hi}]")
    return value


def _str(
    obj: Mapping[str, Any],
    key: str,
    *,
    max_len: int = MAX_SERVER_TEXT_CHARS,
    required: bool = True,
    pattern: re.Pattern[str] | None = None,
) -> Any:
    value = _get(obj, key, required)
    if value is None:
        return None
    if not isinstance(value, str):
        _fail(ErrorCode.BAD_FIELD, f"{key!r} must be a string")
    if len(value) > max_len:
        _fail(ErrorCode.BAD_FIELD, f"{key!r} is longer than {max_len} characters")
    if pattern is not None and not pattern.fullmatch(value):
        _fail(ErrorCode.BAD_FIELD, f"{key!r} has an invalid format")
    return value


def _bool(obj: Mapping[str, Any], key: str, *, required: bool = True) -> Any:
    value = _get(obj, key, required)
    if value is not None and not isinstance(value, bool):
        _fail(ErrorCode.BAD_FIELD, f"{key!r} must be a boolean")
    return value


def _time(obj: Mapping[str, Any], key: str = "t") -> Any:
    value = _get(obj, key, False)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        _fail(ErrorCode.BAD_FIELD, f"{key!r} must be a number")
    if not math.isfinite(value) or value < 0:
        _fail(ErrorCode.BAD_FIELD, f"{key!r} must be a finite number >= 0")
    return float(value)


def _rate(obj: Mapping[str, Any], key: str, *, required: bool) -> Any:
    value = _get(obj, key, required)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value not in SUPPORTED_RATES:
        _fail(
            ErrorCode.BAD_SAMPLE_RATE,
            f"{key!r} must be one of {sorted(SUPPORTED_RATES)}, got {value!r}",
        )
    return value


def _options(obj: Mapping[str, Any]) -> dict[str, OptionValue]:
    value = _get(obj, "options", False)
    if value is None:
        return {}
    if not isinstance(value, dict):
        _fail(ErrorCode.BAD_FIELD, "'options' must be an object")
    if len(value) > MAX_OPTIONS:
        _fail(ErrorCode.BAD_FIELD, f"'options' has more than {MAX_OPTIONS} entries")
    out: dict[str, OptionValue] = {}
    for key, item in value.items():
        if not _NAME_RE.fullmatch(key) or len(key) > MAX_OPTION_KEY_CHARS:
            _fail(ErrorCode.BAD_FIELD, f"option name {key[:40]!r} is invalid")
        if isinstance(item, str):
            if len(item) > MAX_OPTION_VALUE_CHARS:
                _fail(ErrorCode.BAD_FIELD, f"option {key!r} is too long")
        elif isinstance(item, float):
            if not math.isfinite(item):
                _fail(ErrorCode.BAD_FIELD, f"option {key!r} must be finite")
        elif not isinstance(item, bool | int):
            _fail(ErrorCode.BAD_FIELD, f"option {key!r} must be a string, number or boolean")
        out[key] = item
    return out


def _words(obj: Mapping[str, Any]) -> tuple[WordSpan, ...]:
    value = _get(obj, "words", True)
    if not isinstance(value, list):
        _fail(ErrorCode.BAD_FIELD, "'words' must be an array")
    if len(value) > MAX_WORDS_PER_MESSAGE:
        _fail(ErrorCode.BAD_FIELD, f"'words' has more than {MAX_WORDS_PER_MESSAGE} entries")
    spans = []
    for item in value:
        if not isinstance(item, dict):
            _fail(ErrorCode.BAD_FIELD, "each word must be an object")
        start, end = _int(item, "start"), _int(item, "end")
        if end < start:
            _fail(ErrorCode.BAD_FIELD, "a word's 'end' is before its 'start'")
        spans.append(WordSpan(_str(item, "text", max_len=200), start, end))
    return tuple(spans)


def _text_input(obj: Mapping[str, Any]) -> Text:
    value = _get(obj, "text", True)
    if not isinstance(value, str):
        _fail(ErrorCode.BAD_FIELD, "'text' must be a string")
    if len(value) > MAX_INPUT_TEXT_CHARS:
        _fail(ErrorCode.TEXT_TOO_LONG, f"'text' is longer than {MAX_INPUT_TEXT_CHARS} characters")
    if not value.strip():
        _fail(ErrorCode.EMPTY_TEXT, "'text' is empty")
    return Text(value)


def _turn_status(obj: Mapping[str, Any]) -> Any:
    value = _str(obj, "status", max_len=20)
    if value not in ("completed", "interrupted"):
        _fail(ErrorCode.BAD_FIELD, "'status' must be 'completed' or 'interrupted'")
    return value


_CLIENT_PARSERS: Final[dict[str, Callable[[Mapping[str, Any]], ClientMessage]]] = {
    SessionStart.TYPE: lambda o: SessionStart(
        sample_rate=_rate(o, "sample_rate", required=True),
        output_rate=_rate(o, "output_rate", required=False),
        session_id=_str(o, "session_id", max_len=64, required=False, pattern=_SESSION_ID_RE),
        token=_str(o, "token", max_len=MAX_TOKEN_CHARS, required=False),
        options=_options(o),
    ),
    AudioEnd.TYPE: lambda o: AudioEnd(),
    Interrupt.TYPE: lambda o: Interrupt(_int(o, "turn", required=False)),
    Text.TYPE: _text_input,
    Playback.TYPE: lambda o: Playback(_int(o, "turn"), _int(o, "played_samples")),
}

_SERVER_PARSERS: Final[dict[str, Callable[[Mapping[str, Any]], ServerMessage]]] = {
    SessionStarted.TYPE: lambda o: SessionStarted(
        session_id=_str(o, "session_id", max_len=64, pattern=_SESSION_ID_RE),
        sample_rate=_rate(o, "sample_rate", required=True),
        output_rate=_rate(o, "output_rate", required=True),
        protocol=_int(o, "protocol", lo=1, hi=PROTOCOL_VERSION),
        max_audio_bytes=_int(o, "max_audio_bytes"),
        resumed=_bool(o, "resumed"),
        t=_time(o),
    ),
    SpeechStarted.TYPE: lambda o: SpeechStarted(_time(o)),
    SpeechStopped.TYPE: lambda o: SpeechStopped(_time(o)),
    TranscriptPartial.TYPE: lambda o: TranscriptPartial(
        _str(o, "text"), _int(o, "utterance"), _time(o)
    ),
    TranscriptFinal.TYPE: lambda o: TranscriptFinal(
        _str(o, "text"), _int(o, "utterance"), _time(o)
    ),
    TurnStarted.TYPE: lambda o: TurnStarted(
        _int(o, "turn"), _str(o, "user_text", required=False), _time(o)
    ),
    AssistantText.TYPE: lambda o: AssistantText(_int(o, "turn"), _str(o, "delta"), _time(o)),
    Words.TYPE: lambda o: Words(_int(o, "turn"), _words(o)),
    TurnMark.TYPE: lambda o: TurnMark(_int(o, "turn"), _str(o, "mark", pattern=_NAME_RE), _time(o)),
    StatusMessage.TYPE: lambda o: StatusMessage(
        kind=_str(o, "kind", pattern=_NAME_RE),
        text=_str(o, "text"),
        turn=_int(o, "turn", required=False),
        tool=_str(o, "tool", max_len=200, required=False),
        t=_time(o),
    ),
    Clear.TYPE: lambda o: Clear(_int(o, "turn"), _time(o)),
    TurnEnded.TYPE: lambda o: TurnEnded(
        turn=_int(o, "turn"),
        status=_turn_status(o),
        heard=_str(o, "heard"),
        heard_ms=_int(o, "heard_ms"),
        t=_time(o),
    ),
    ErrorMessage.TYPE: lambda o: ErrorMessage(
        _str(o, "code", pattern=_NAME_RE), _str(o, "message", max_len=2000), _bool(o, "fatal")
    ),
    SessionEnded.TYPE: lambda o: SessionEnded(_str(o, "reason", max_len=200), _time(o)),
}


def _reject_constant(name: str) -> NoReturn:
    # NaN and Infinity are not JSON (RFC 8259) even though Python's json accepts them.
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _parse_object(frame: str) -> dict[str, Any]:
    if len(frame) > MAX_TEXT_FRAME_CHARS:
        _fail(ErrorCode.FRAME_TOO_LARGE, f"text frame over {MAX_TEXT_FRAME_CHARS} characters")
    try:
        value = json.loads(frame, parse_constant=_reject_constant, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError) as exc:
        _fail(ErrorCode.BAD_JSON, f"not valid JSON: {str(exc)[:200]}")
    if not isinstance(value, dict):
        _fail(ErrorCode.NOT_OBJECT, "a control frame must be a JSON object")
    return value


def _parse_envelope(
    obj: Mapping[str, Any], parsers: Mapping[str, Callable[[Mapping[str, Any]], Any]]
) -> Any:
    kind = obj.get("type")
    if not isinstance(kind, str):
        _fail(ErrorCode.MISSING_TYPE, "'type' must be present and a string")
    # Version before type: a peer speaking a later version gets told so, not "unknown type".
    version = obj.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        _fail(ErrorCode.BAD_VERSION, f"'v' must be {PROTOCOL_VERSION}, got {version!r:.40}")
    parser = parsers.get(kind)
    if parser is None:
        _fail(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:60]!r}")
    return parser(obj)


def _to_json_value(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _to_json_value(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None
        }
    if isinstance(value, tuple | list):
        return [_to_json_value(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _to_json_value(v) for k, v in value.items()}
    return value


def message_to_dict(message: ClientMessage | ServerMessage) -> dict[str, Any]:
    """The JSON object of a control message (`type` and `v` first; None fields omitted)."""
    body = _to_json_value(message)
    return {"type": message.TYPE, "v": PROTOCOL_VERSION, **body}


def _dump(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encode_audio_out(message: AudioOut) -> bytes:
    """The binary frame of `message`: 12-byte header + PCM16LE (see AUDIO_HEADER)."""
    pcm = np.ascontiguousarray(message.pcm, dtype="<i2")
    return AUDIO_HEADER.pack(AUDIO_KIND_PCM16, 0, 0, message.turn, message.start) + pcm.tobytes()


def decode_audio_out(frame: bytes) -> AudioOut:
    """Parse a server audio frame; raises `_Invalid` (callers wrap it)."""
    if len(frame) <= AUDIO_HEADER.size:
        _fail(ErrorCode.BAD_AUDIO_HEADER, "audio frame shorter than its header")
    kind, flags, reserved, turn, start = AUDIO_HEADER.unpack_from(frame)
    if kind != AUDIO_KIND_PCM16 or flags or reserved:
        _fail(ErrorCode.BAD_AUDIO_HEADER, f"unknown audio frame kind {kind}/{flags}/{reserved}")
    body = memoryview(frame)[AUDIO_HEADER.size :]
    if len(body) % 2:
        _fail(ErrorCode.ODD_LENGTH, "PCM16 payload has an odd number of bytes")
    pcm = np.frombuffer(body, dtype="<i2").astype(np.int16)
    return AudioOut(turn=turn, start=start, pcm=pcm)


def max_audio_bytes(sample_rate: int) -> int:
    """Largest binary audio frame accepted at `sample_rate` (one second of PCM16 mono)."""
    return int(sample_rate * MAX_AUDIO_SECONDS) * 2


# --------------------------------------------------------------------------- connections


class _Connection:
    """State shared by both ends: the negotiated rates, the rejection counters, closure."""

    def __init__(self, *, max_rejections: int = DEFAULT_MAX_REJECTIONS) -> None:
        self.sample_rate: int | None = None
        self.output_rate: int | None = None
        # `closed`: we may send nothing more. `receive_closed`: we accept nothing more (a fatal
        # rejection was raised, and the error frame explaining it may still go out).
        self.closed = False
        self.receive_closed = False
        self.rejections: Counter[str] = Counter()
        self._max_rejections = max_rejections

    @property
    def rejected_total(self) -> int:
        return sum(self.rejections.values())

    def _remote(self, invalid: _Invalid, *, fatal: bool = False) -> RemoteProtocolError:
        self.rejections[invalid.code.value] += 1
        if fatal or self.receive_closed:
            self.receive_closed = True
            return RemoteProtocolError(invalid.code, invalid.message, fatal=True)
        if self.rejected_total > self._max_rejections:
            self.receive_closed = True
            self.rejections[ErrorCode.TOO_MANY_ERRORS.value] += 1
            return RemoteProtocolError(
                ErrorCode.TOO_MANY_ERRORS,
                f"closing after {self._max_rejections} rejected frames "
                f"(last: {invalid.code}: {invalid.message})",
                fatal=True,
            )
        return RemoteProtocolError(invalid.code, invalid.message)

    def error_message(self, error: ProtocolError) -> ErrorMessage:
        """The `error` frame to send the peer for `error`."""
        return ErrorMessage(code=error.code.value, message=error.message[:2000], fatal=error.fatal)

    @staticmethod
    def _checked_dict(
        message: ClientMessage | ServerMessage,
        parsers: Mapping[str, Callable[[Mapping[str, Any]], Any]],
    ) -> dict[str, Any]:
        """`message` as a JSON object, checked with the peer's parsers (so the peer accepts it)."""
        obj = message_to_dict(message)
        try:
            _parse_envelope(obj, parsers)
        except _Invalid as invalid:
            raise LocalProtocolError(invalid.code, invalid.message) from None
        return obj


class ServerProtocol(_Connection):
    """The server's end of one session's WebSocket.

    States: idle (until `session.start`) → started → input ended (after `audio.end`) → closed
    (after a fatal error either way). `rejections` counts every rejected frame by code.
    """

    def __init__(self, *, max_rejections: int = DEFAULT_MAX_REJECTIONS) -> None:
        super().__init__(max_rejections=max_rejections)
        self.started = False
        self.input_ended = False
        self.started_sent = False
        # turn -> samples sent so far, for the last few turns (to check playback reports).
        self._sent: OrderedDict[int, int] = OrderedDict()

    def receive(self, frame: str | bytes | None) -> ClientMessage:
        """Parse one received frame (``None`` is how quart delivers an empty binary frame)."""
        if isinstance(frame, str):
            return self.receive_text(frame)
        return self.receive_bytes(frame or b"")

    def receive_text(self, frame: str) -> ClientMessage:
        try:
            if self.closed or self.receive_closed:
                _fail(ErrorCode.CLOSED, "the connection is closing")
            message: ClientMessage = _parse_envelope(_parse_object(frame), _CLIENT_PARSERS)
            self._check_order(message)
        except _Invalid as invalid:
            raise self._remote(invalid) from None
        self._apply(message)
        return message

    def receive_bytes(self, frame: bytes) -> AudioIn:
        try:
            if self.closed or self.receive_closed:
                _fail(ErrorCode.CLOSED, "the connection is closing")
            if not self.started or self.sample_rate is None:
                _fail(ErrorCode.NOT_STARTED, "audio before 'session.start'")
            if self.input_ended:
                _fail(ErrorCode.INPUT_ENDED, "audio after 'audio.end'")
            if not frame:
                _fail(ErrorCode.EMPTY_FRAME, "empty audio frame")
            limit = max_audio_bytes(self.sample_rate)
            if len(frame) > limit:
                _fail(ErrorCode.FRAME_TOO_LARGE, f"audio frame over {limit} bytes (1 s)")
            if len(frame) % 2:
                _fail(ErrorCode.ODD_LENGTH, "PCM16 audio frame has an odd number of bytes")
        except _Invalid as invalid:
            raise self._remote(invalid) from None
        return AudioIn(np.frombuffer(frame, dtype="<i2").astype(np.int16))

    def _check_order(self, message: ClientMessage) -> None:
        if isinstance(message, SessionStart):
            if self.started:
                _fail(ErrorCode.ALREADY_STARTED, "'session.start' was already received")
            return
        if not self.started:
            _fail(ErrorCode.NOT_STARTED, f"{message.TYPE!r} before 'session.start'")
        if self.input_ended and isinstance(message, Text | AudioEnd):
            _fail(ErrorCode.INPUT_ENDED, f"{message.TYPE!r} after 'audio.end'")
        if isinstance(message, Playback):
            sent = self._sent.get(message.turn)
            if sent is None:
                _fail(ErrorCode.UNKNOWN_TURN, f"no audio was sent for turn {message.turn}")
            if message.played_samples > sent:
                _fail(
                    ErrorCode.PLAYBACK_AHEAD,
                    f"played {message.played_samples} samples of turn {message.turn} "
                    f"but only {sent} were sent",
                )

    def _apply(self, message: ClientMessage) -> None:
        if isinstance(message, SessionStart):
            self.started = True
            self.sample_rate = message.sample_rate
            self.output_rate = message.effective_output_rate
        elif isinstance(message, AudioEnd):
            self.input_ended = True

    def send(self, message: ServerMessage) -> str | bytes:
        """The frame for `message`; `LocalProtocolError` if sending it would break the protocol."""
        if self.closed:
            raise LocalProtocolError(ErrorCode.CLOSED, f"cannot send {message.TYPE!r}: closed")
        if isinstance(message, ErrorMessage):
            # An error may go out at any time, even before the session started.
            frame: str | bytes = self._encode_control(message)
            if message.fatal:
                self.closed = self.receive_closed = True
            return frame
        if isinstance(message, SessionStarted):
            if not self.started:
                raise LocalProtocolError(ErrorCode.NOT_STARTED, "'session.started' before start")
            if self.started_sent:
                raise LocalProtocolError(ErrorCode.ALREADY_STARTED, "'session.started' twice")
            if (message.sample_rate, message.output_rate) != (self.sample_rate, self.output_rate):
                raise LocalProtocolError(
                    ErrorCode.BAD_SAMPLE_RATE,
                    f"rates {message.sample_rate}/{message.output_rate} differ from the "
                    f"client's {self.sample_rate}/{self.output_rate}",
                )
            frame = self._encode_control(message)
            self.started_sent = True
            return frame
        if not self.started_sent:
            raise LocalProtocolError(
                ErrorCode.NOT_STARTED, f"{message.TYPE!r} before 'session.started'"
            )
        if isinstance(message, AudioOut):
            return self._encode_audio(message)
        return self._encode_control(message)

    def _encode_audio(self, message: AudioOut) -> bytes:
        n = len(message.pcm)
        assert self.output_rate is not None
        if n == 0:
            raise LocalProtocolError(ErrorCode.EMPTY_FRAME, "empty audio frame")
        if 2 * n > max_audio_bytes(self.output_rate):
            raise LocalProtocolError(ErrorCode.FRAME_TOO_LARGE, f"{n} samples in one frame")
        if not (0 <= message.turn <= UINT32_MAX and 0 <= message.start <= UINT32_MAX - n):
            raise LocalProtocolError(ErrorCode.BAD_FIELD, "turn/start out of uint32 range")
        self._sent[message.turn] = max(self._sent.get(message.turn, 0), message.start + n)
        self._sent.move_to_end(message.turn)
        while len(self._sent) > _TRACKED_TURNS:
            self._sent.popitem(last=False)
        return encode_audio_out(message)

    def _encode_control(self, message: ServerMessage) -> str:
        # Check with the parser the client runs, so what we send is what it accepts.
        return _dump(self._checked_dict(message, _SERVER_PARSERS))


class ClientProtocol(_Connection):
    """The client's end (used by tests and Python clients; the page mirrors it in JS)."""

    def __init__(self, *, max_rejections: int = DEFAULT_MAX_REJECTIONS) -> None:
        super().__init__(max_rejections=max_rejections)
        self.start_sent = False
        self.started = False
        self.input_ended = False
        self.session_id: str | None = None

    def send(self, message: ClientMessage) -> str | bytes:
        if self.closed:
            raise LocalProtocolError(ErrorCode.CLOSED, f"cannot send {message.TYPE!r}: closed")
        if isinstance(message, SessionStart):
            if self.start_sent:
                raise LocalProtocolError(ErrorCode.ALREADY_STARTED, "'session.start' twice")
        elif not self.start_sent:
            raise LocalProtocolError(ErrorCode.NOT_STARTED, f"{message.TYPE!r} before start")
        elif self.input_ended and isinstance(message, AudioIn | Text | AudioEnd):
            raise LocalProtocolError(ErrorCode.INPUT_ENDED, f"{message.TYPE!r} after audio.end")
        if isinstance(message, AudioIn):
            assert self.sample_rate is not None
            data = np.ascontiguousarray(message.pcm, dtype="<i2").tobytes()
            if not data:
                raise LocalProtocolError(ErrorCode.EMPTY_FRAME, "empty audio frame")
            if len(data) > max_audio_bytes(self.sample_rate):
                raise LocalProtocolError(ErrorCode.FRAME_TOO_LARGE, "audio frame over 1 s")
            return data
        obj = self._checked_dict(message, _CLIENT_PARSERS)
        if isinstance(message, SessionStart):
            self.start_sent = True
            self.sample_rate = message.sample_rate
            self.output_rate = message.effective_output_rate
        elif isinstance(message, AudioEnd):
            self.input_ended = True
        return _dump(obj)

    def receive(self, frame: str | bytes) -> ServerMessage:
        try:
            if isinstance(frame, str):
                message: ServerMessage = _parse_envelope(_parse_object(frame), _SERVER_PARSERS)
            else:
                if not self.started:
                    _fail(ErrorCode.NOT_STARTED, "audio before 'session.started'")
                message = decode_audio_out(frame)
        except _Invalid as invalid:
            raise self._remote(invalid) from None
        if isinstance(message, SessionStarted):
            self.started = True
            self.session_id = message.session_id
            self.sample_rate, self.output_rate = message.sample_rate, message.output_rate
        elif isinstance(message, ErrorMessage) and message.fatal:
            self.closed = True
        return message
