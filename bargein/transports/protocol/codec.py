"""Frames ↔ messages: JSON parsing with the rules of docs/protocol.md, the parser table of each
direction, serialisation, and the binary audio frame."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, Final, NoReturn

import numpy as np

from bargein.transports.protocol.errors import ErrorCode, fail
from bargein.transports.protocol.fields import (
    NAME_RE,
    RESUME_SECRET_RE,
    SESSION_ID_RE,
    boolean,
    capabilities,
    history,
    integer,
    number,
    options,
    rate,
    string,
    text_input,
    timestamp,
    turn_status,
    words,
)
from bargein.transports.protocol.limits import (
    AUDIO_HEADER,
    AUDIO_KIND_PCM16,
    MAX_HISTORY_CHARS,
    MAX_HISTORY_ENTRIES,
    MAX_TEXT_FRAME_CHARS,
    MAX_TOKEN_CHARS,
    PROTOCOL_VERSION,
)
from bargein.transports.protocol.messages import (
    AssistantText,
    AudioEnd,
    AudioOut,
    Clear,
    ClientMessage,
    ErrorMessage,
    HistoryEntry,
    Interrupt,
    OutputDucked,
    OutputRestored,
    Playback,
    ServerMessage,
    SessionEnded,
    SessionStart,
    SessionStarted,
    SpeechStarted,
    SpeechStopped,
    StatusMessage,
    Text,
    TranscriptFinal,
    TranscriptPartial,
    TurnEnded,
    TurnMark,
    TurnStarted,
    Words,
)

Parsers = Mapping[str, Callable[[Mapping[str, Any]], Any]]

# A lone UTF-16 surrogate is not Unicode text: no UTF-8 encoder (the WebSocket library's, the
# SSE stream's, a log file's) accepts it, so one must never get past the codec either way.
SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
# Only a `\uD800`-`\uDFFF` escape (or a raw surrogate) can produce one when JSON is parsed.
_SURROGATE_ESCAPE_RE: Final = re.compile(r"\\u[dD][89a-fA-F]")

CLIENT_PARSERS: Final[dict[str, Callable[[Mapping[str, Any]], ClientMessage]]] = {
    SessionStart.TYPE: lambda o: SessionStart(
        sample_rate=rate(o, "sample_rate", required=True),
        output_rate=rate(o, "output_rate", required=False),
        session_id=string(o, "session_id", max_len=64, required=False, pattern=SESSION_ID_RE),
        token=string(o, "token", max_len=MAX_TOKEN_CHARS, required=False),
        options=options(o),
        resume_secret=string(o, "resume_secret", required=False, pattern=RESUME_SECRET_RE),
    ),
    AudioEnd.TYPE: lambda o: AudioEnd(),
    Interrupt.TYPE: lambda o: Interrupt(integer(o, "turn", required=False)),
    Text.TYPE: text_input,
    Playback.TYPE: lambda o: Playback(integer(o, "turn"), integer(o, "played_samples")),
}

SERVER_PARSERS: Final[dict[str, Callable[[Mapping[str, Any]], ServerMessage]]] = {
    SessionStarted.TYPE: lambda o: SessionStarted(
        session_id=string(o, "session_id", max_len=64, pattern=SESSION_ID_RE),
        sample_rate=rate(o, "sample_rate", required=True),
        output_rate=rate(o, "output_rate", required=True),
        protocol=integer(o, "protocol", lo=1, hi=PROTOCOL_VERSION),
        max_audio_bytes=integer(o, "max_audio_bytes"),
        resumed=boolean(o, "resumed"),
        t=timestamp(o),
        resume_secret=string(o, "resume_secret", required=False, pattern=RESUME_SECRET_RE),
        history=history(o),
        capabilities=capabilities(o),
        policy=string(o, "policy", required=False, pattern=NAME_RE),
    ),
    SpeechStarted.TYPE: lambda o: SpeechStarted(timestamp(o)),
    SpeechStopped.TYPE: lambda o: SpeechStopped(timestamp(o), timestamp(o, "speech_end")),
    TranscriptPartial.TYPE: lambda o: TranscriptPartial(
        string(o, "text"), integer(o, "utterance"), timestamp(o)
    ),
    TranscriptFinal.TYPE: lambda o: TranscriptFinal(
        string(o, "text"), integer(o, "utterance"), timestamp(o)
    ),
    TurnStarted.TYPE: lambda o: TurnStarted(
        integer(o, "turn"), string(o, "user_text", required=False), timestamp(o)
    ),
    AssistantText.TYPE: lambda o: AssistantText(
        integer(o, "turn"), string(o, "delta"), timestamp(o)
    ),
    Words.TYPE: lambda o: Words(integer(o, "turn"), words(o)),
    TurnMark.TYPE: lambda o: TurnMark(
        integer(o, "turn"), string(o, "mark", pattern=NAME_RE), timestamp(o)
    ),
    OutputDucked.TYPE: lambda o: OutputDucked(
        integer(o, "turn"), number(o, "depth_db", lo=-60.0, hi=0.0), timestamp(o)
    ),
    OutputRestored.TYPE: lambda o: OutputRestored(
        integer(o, "turn"), string(o, "text"), integer(o, "ducked_ms"), timestamp(o)
    ),
    StatusMessage.TYPE: lambda o: StatusMessage(
        kind=string(o, "kind", pattern=NAME_RE),
        text=string(o, "text"),
        turn=integer(o, "turn", required=False),
        tool=string(o, "tool", max_len=200, required=False),
        t=timestamp(o),
    ),
    Clear.TYPE: lambda o: Clear(integer(o, "turn"), timestamp(o)),
    TurnEnded.TYPE: lambda o: TurnEnded(
        turn=integer(o, "turn"),
        status=turn_status(o),
        heard=string(o, "heard"),
        heard_ms=integer(o, "heard_ms"),
        t=timestamp(o),
    ),
    ErrorMessage.TYPE: lambda o: ErrorMessage(
        string(o, "code", pattern=NAME_RE), string(o, "message", max_len=2000), boolean(o, "fatal")
    ),
    SessionEnded.TYPE: lambda o: SessionEnded(string(o, "reason", max_len=200), timestamp(o)),
}


def reject_json_constant(name: str) -> NoReturn:
    """`parse_constant` for every strict JSON parser here (the codec, the chat endpoint)."""
    # NaN and Infinity are not JSON (RFC 8259) even though Python's json accepts them.
    raise ValueError(f"{name} is not valid JSON")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def strict_json_loads(text: str) -> Any:
    """RFC 8259 JSON only, for every protocol from outside (our WebSocket, telephony carriers,
    the Realtime endpoint): no NaN/Infinity, no duplicate keys (whose meaning differs between
    parsers). Raises ValueError or RecursionError."""
    return json.loads(text, parse_constant=reject_json_constant, object_pairs_hook=_no_duplicates)


def parse_object(frame: str) -> dict[str, Any]:
    if len(frame) > MAX_TEXT_FRAME_CHARS:
        fail(ErrorCode.FRAME_TOO_LARGE, f"text frame over {MAX_TEXT_FRAME_CHARS} characters")
    try:
        value = strict_json_loads(frame)
    except (ValueError, RecursionError) as exc:
        fail(ErrorCode.BAD_JSON, f"not valid JSON: {str(exc)[:200]}")
    if not isinstance(value, dict):
        fail(ErrorCode.NOT_OBJECT, "a control frame must be a JSON object")
    if (_SURROGATE_ESCAPE_RE.search(frame) or SURROGATE_RE.search(frame)) and _has_surrogate(value):
        fail(ErrorCode.BAD_JSON, "a string holds a lone UTF-16 surrogate (not Unicode text)")
    return value


def scalar_text(text: str) -> str:
    """`text` with any lone surrogate replaced by U+FFFD: for text from engines (an upstream
    model can send `\\ud800`) that must reach the peer rather than make its frame unsendable."""
    return SURROGATE_RE.sub("\ufffd", text)


def _has_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return SURROGATE_RE.search(value) is not None
    if isinstance(value, dict):
        return any(_has_surrogate(k) or _has_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_surrogate(v) for v in value)
    return False


def parse_envelope(obj: Mapping[str, Any], parsers: Parsers) -> Any:
    kind = obj.get("type")
    if not isinstance(kind, str):
        fail(ErrorCode.MISSING_TYPE, "'type' must be present and a string")
    # Version before type: a peer speaking a later version gets told so, not "unknown type".
    version = obj.get("v")
    # `type is int`: 1.0 and true compare equal to 1 in Python but are not the integer 1.
    if type(version) is not int or version != PROTOCOL_VERSION:
        fail(ErrorCode.BAD_VERSION, f"'v' must be {PROTOCOL_VERSION}, got {version!r:.40}")
    parser = parsers.get(kind)
    if parser is None:
        fail(ErrorCode.UNKNOWN_TYPE, f"unknown message type {kind[:60]!r}")
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


def dump(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def history_within(
    entries: tuple[HistoryEntry, ...],
    max_chars: int = MAX_HISTORY_CHARS,
    max_entries: int = MAX_HISTORY_ENTRIES,
) -> tuple[HistoryEntry, ...]:
    """The newest `entries` whose encoded size fits `max_chars` (the oldest are left out), so a
    long conversation still fits one `session.started` frame."""
    kept: list[HistoryEntry] = []
    size = 0
    for entry in reversed(entries[-max_entries:]):
        size += len(dump(_to_json_value(entry))) + 1
        if size > max_chars:
            break
        kept.append(entry)
    return tuple(reversed(kept))


def encode_audio_out(message: AudioOut) -> bytes:
    """The binary frame of `message`: 12-byte header + PCM16LE (see AUDIO_HEADER)."""
    pcm = np.ascontiguousarray(message.pcm, dtype="<i2")
    return AUDIO_HEADER.pack(AUDIO_KIND_PCM16, 0, 0, message.turn, message.start) + pcm.tobytes()


def decode_audio_out(frame: bytes) -> AudioOut:
    """Parse a server audio frame; raises `Invalid` (callers wrap it)."""
    if len(frame) <= AUDIO_HEADER.size:
        fail(ErrorCode.BAD_AUDIO_HEADER, "audio frame shorter than its header")
    kind, flags, reserved, turn, start = AUDIO_HEADER.unpack_from(frame)
    if kind != AUDIO_KIND_PCM16 or flags or reserved:
        fail(ErrorCode.BAD_AUDIO_HEADER, f"unknown audio frame kind {kind}/{flags}/{reserved}")
    body = memoryview(frame)[AUDIO_HEADER.size :]
    if len(body) % 2:
        fail(ErrorCode.ODD_LENGTH, "PCM16 payload has an odd number of bytes")
    pcm = np.frombuffer(body, dtype="<i2").astype(np.int16)
    return AudioOut(turn=turn, start=start, pcm=pcm)
