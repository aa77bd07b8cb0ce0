"""The carrier's Media Streams messages <-> typed messages (pure: no I/O, no clock).

`CarrierCodec.feed(frame)` takes one WebSocket frame from the carrier and returns what it
means, in order: typed messages and `Rejected` entries for what it refused (bad JSON, unknown
events, wrong codec, bad payloads, frames before `start`...), never an exception. The `encode_*`
methods make the frames we send back. Field checks are the protocol's own validators
(bargein/transports/protocol/fields.py) so both transports refuse the same things the same way.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

import numpy as np

from bargein.dsp import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from bargein.runtime.messages import Int16Array
from bargein.transports.protocol.codec import strict_json_loads
from bargein.transports.protocol.errors import ErrorCode, Invalid, fail
from bargein.transports.protocol.fields import field_value, string
from bargein.transports.telephony.carriers import Carrier

SAMPLE_RATE: Final = 8000
FRAME_SAMPLES: Final = 160  # 20 ms at 8 kHz: one media message each way
MAX_FRAME_CHARS: Final = 65536
# At most 1 s of audio in one media message (Twilio sends 20 ms; Telnyx up to a few frames).
MAX_PAYLOAD_BYTES: Final = SAMPLE_RATE
MAX_PARAMETERS: Final = 32
MAX_ID_CHARS: Final = 128
# Out-of-order frames are held for at most this many later frames before a gap is skipped.
REORDER_WINDOW: Final = 8
DTMF_DIGITS: Final = frozenset("0123456789*#ABCD")
DIGITS_RE: Final = re.compile(r"[0-9]{1,12}")
ID_RE: Final = re.compile(rf"[\x21-\x7e]{{1,{MAX_ID_CHARS}}}")
PARAM_NAME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")

# Codes of what the codec refuses besides the protocol's own (ErrorCode values).
UNSUPPORTED_CODEC: Final = "unsupported_codec"
BAD_PAYLOAD: Final = "bad_payload"
BINARY_FRAME: Final = "binary_frame"
LATE_FRAME: Final = "late_frame"
AFTER_STOP: Final = "after_stop"
OTHER_TRACK: Final = "other_track"


@dataclass(frozen=True, slots=True)
class Connected:
    protocol: str | None


@dataclass(frozen=True, slots=True)
class Start:
    stream_id: str
    call_id: str | None
    encoding: str  # our codec name: "ulaw" | "alaw"
    sample_rate: int
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Media:
    pcm: Int16Array  # decoded, 8 kHz
    timestamp_ms: int | None
    chunk: int | None


@dataclass(frozen=True, slots=True)
class Dtmf:
    digit: str


@dataclass(frozen=True, slots=True)
class MarkEcho:
    name: str


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass(frozen=True, slots=True)
class Rejected:
    code: str
    detail: str


CarrierMessage = Connected | Start | Media | Dtmf | MarkEcho | Stop
Decoded = CarrierMessage | Rejected


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _refuse(code: str, message: str) -> NoReturn:
    raise _Refused(code, message)


def _digits(obj: dict[str, Any], key: str) -> int | None:
    """Carriers send counters as decimal strings ("chunk": "2"); some send numbers."""
    value = field_value(obj, key, False)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 10**12:
        return value
    return int(string(obj, key, max_len=12, pattern=DIGITS_RE))


def _object(obj: dict[str, Any], key: str, *, required: bool = True) -> dict[str, Any]:
    value = field_value(obj, key, required)
    if value is None:
        return {}
    if not isinstance(value, dict):
        fail(ErrorCode.BAD_FIELD, f"{key!r} must be an object")
    return value


class CarrierCodec:
    """One call's codec for one carrier; counts what it refused in `rejections`."""

    def __init__(self, carrier: Carrier) -> None:
        self.carrier = carrier
        self.start: Start | None = None
        self.stopped = False
        self.rejections: Counter[str] = Counter()
        self._next_seq: int | None = None
        self._held: dict[int, dict[str, Any]] = {}

    # -- carrier -> us ------------------------------------------------------------------------

    def feed(self, frame: str | bytes | None) -> list[Decoded]:
        if not isinstance(frame, str):  # None: how quart delivers an empty binary frame
            return [self._reject(BINARY_FRAME, "carrier messages are JSON text frames")]
        if len(frame) > MAX_FRAME_CHARS:
            return [self._reject(ErrorCode.FRAME_TOO_LARGE, f"over {MAX_FRAME_CHARS} chars")]
        try:
            obj = strict_json_loads(frame)
        except (ValueError, RecursionError):
            return [self._reject(ErrorCode.BAD_JSON, "not valid JSON")]
        if not isinstance(obj, dict):
            return [self._reject(ErrorCode.NOT_OBJECT, "a message must be a JSON object")]
        try:
            seq = _digits(obj, self.carrier.sequence_key)
        except Invalid as bad:
            return [self._reject(bad.code, bad.message)]
        if not self.carrier.reorders or seq is None:
            return [self._decode(obj)]
        return [self._decode(o) for o in self._order(seq, obj)]

    def _order(self, seq: int, obj: dict[str, Any]) -> list[dict[str, Any]]:
        """Release frames in sequence order; a frame older than the last released is late."""
        if self._next_seq is None:
            self._next_seq = seq
        if seq < self._next_seq or seq in self._held:
            self.rejections[LATE_FRAME] += 1
            return [{"event": "_late", "seq": seq}]
        self._held[seq] = obj
        out: list[dict[str, Any]] = []
        # `stop` ends the stream: nothing will fill a gap any more.
        flush = obj.get("event") == "stop"
        while self._held:
            if self._next_seq in self._held:
                out.append(self._held.pop(self._next_seq))
                self._next_seq += 1
            elif flush or len(self._held) > REORDER_WINDOW:
                self._next_seq = min(self._held)  # a lost frame: skip the gap
            else:
                break
        return out

    def _reject(self, code: str, detail: str) -> Rejected:
        self.rejections[str(code)] += 1
        return Rejected(str(code), detail)

    def _decode(self, obj: dict[str, Any]) -> Decoded:
        if obj.get("event") == "_late":
            return Rejected(LATE_FRAME, f"frame {obj['seq']} arrived after later ones")
        try:
            return self._message(obj)
        except (Invalid, _Refused) as bad:
            return self._reject(bad.code, bad.message)

    def _message(self, obj: dict[str, Any]) -> Decoded:
        event = string(obj, "event", max_len=40)
        if self.stopped:
            return self._reject(AFTER_STOP, f"{event!r} after 'stop'")
        if event == "connected":
            return Connected(string(obj, "protocol", max_len=40, required=False))
        if event == "start":
            if self.start is not None:
                fail(ErrorCode.ALREADY_STARTED, "a second 'start'")
            self.start = self._start(obj)
            return self.start
        if event not in ("media", "dtmf", "mark", "stop"):
            fail(ErrorCode.UNKNOWN_TYPE, f"unknown event {event[:40]!r}")
        if self.start is None:
            fail(ErrorCode.NOT_STARTED, f"{event!r} before 'start'")
        if event == "media":
            return self._media(_object(obj, "media"), self.start)
        if event == "dtmf":
            digit = string(_object(obj, "dtmf"), "digit", max_len=1)
            if digit not in DTMF_DIGITS:
                fail(ErrorCode.BAD_FIELD, "'digit' must be one of 0-9 * # A-D")
            return Dtmf(digit)
        if event == "mark":
            return MarkEcho(string(_object(obj, "mark"), "name", max_len=MAX_ID_CHARS))
        self.stopped = True
        return Stop()

    def _start(self, obj: dict[str, Any]) -> Start:
        c = self.carrier
        body = _object(obj, "start")
        # Twilio repeats the stream id inside `start`; Telnyx has it at the top level only.
        stream_id = string(obj, c.stream_key, required=False, pattern=ID_RE) or string(
            body, c.stream_key, pattern=ID_RE
        )
        call_id = string(body, c.call_key, required=False, pattern=ID_RE)
        media_format = _object(body, c.format_key)
        name = string(media_format, "encoding", max_len=40)
        encoding = c.codec_of(name)
        if encoding is None:
            supported = ", ".join(n for n, _ in c.encodings)
            _refuse(UNSUPPORTED_CODEC, f"encoding {name!r}: this server takes {supported}")
        rate = _digits(media_format, "sampleRate" if c.name == "twilio" else "sample_rate")
        if rate not in (None, SAMPLE_RATE):
            _refuse(UNSUPPORTED_CODEC, f"sample rate {rate}: this server takes 8000")
        channels = _digits(media_format, "channels")
        if channels not in (None, 1):
            _refuse(UNSUPPORTED_CODEC, "only mono audio")
        return Start(stream_id, call_id, encoding, SAMPLE_RATE, self._parameters(body))

    def _parameters(self, body: dict[str, Any]) -> dict[str, str]:
        value = field_value(body, self.carrier.params_key, False)
        if isinstance(value, list):
            # Telnyx's API takes custom parameters as [{"name", "value"}]: accept that shape too.
            if len(value) > MAX_PARAMETERS or not all(isinstance(p, dict) for p in value):
                fail(ErrorCode.BAD_FIELD, "custom parameters must be name/value objects")
            value = {string(p, "name", max_len=40): string(p, "value", max_len=500) for p in value}
        params = _object({"p": value}, "p", required=False)
        if len(params) > MAX_PARAMETERS:
            fail(ErrorCode.BAD_FIELD, f"more than {MAX_PARAMETERS} custom parameters")
        out: dict[str, str] = {}
        for key in params:
            if not isinstance(key, str) or not PARAM_NAME_RE.fullmatch(key):
                fail(ErrorCode.BAD_FIELD, f"custom parameter name {str(key)[:40]!r} is invalid")
            out[key] = string(params, key, max_len=500)
        return out

    def _media(self, media: dict[str, Any], start: Start) -> Media:
        track = string(media, "track", max_len=20, required=False)
        if track not in (None, "inbound", "inbound_track"):
            _refuse(OTHER_TRACK, f"media of track {track!r} is not the caller's")
        text = string(media, "payload", max_len=4 * MAX_PAYLOAD_BYTES // 3 + 4)
        try:
            payload = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            _refuse(BAD_PAYLOAD, "'payload' is not base64")
        if not payload:
            _refuse(BAD_PAYLOAD, "'payload' is empty")
        pcm = ulaw_decode(payload) if start.encoding == "ulaw" else alaw_decode(payload)
        return Media(pcm, _digits(media, "timestamp"), _digits(media, "chunk"))

    # -- us -> carrier ------------------------------------------------------------------------

    def encode_audio(self, pcm: Int16Array) -> bytes:
        """8 kHz PCM16 -> the call's codec bytes."""
        encoding = self.start.encoding if self.start is not None else "ulaw"
        codes = ulaw_encode(pcm) if encoding == "ulaw" else alaw_encode(pcm)
        return bytes(np.asarray(codes, np.uint8))

    def _outbound(self, event: str, **body: Any) -> str:
        obj: dict[str, Any] = {"event": event}
        if self.carrier.names_stream and self.start is not None:
            obj[self.carrier.stream_key] = self.start.stream_id
        obj.update(body)
        return json.dumps(obj, separators=(",", ":"))

    def encode_media(self, payload: bytes) -> str:
        return self._outbound("media", media={"payload": base64.b64encode(payload).decode()})

    def encode_mark(self, name: str) -> str:
        return self._outbound("mark", mark={"name": name})

    def encode_clear(self) -> str:
        return self._outbound("clear")
