"""The two ends of a session's WebSocket as state machines over the codec (no I/O): which
message may come when, the rejection counters, and the check that what we send is valid."""

from __future__ import annotations

from collections import Counter, OrderedDict

import numpy as np

from bargein.transports.protocol.codec import (
    CLIENT_PARSERS,
    SERVER_PARSERS,
    SURROGATE_RE,
    Parsers,
    decode_audio_out,
    dump,
    encode_audio_out,
    message_to_dict,
    parse_envelope,
    parse_object,
)
from bargein.transports.protocol.errors import (
    ErrorCode,
    Invalid,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    fail,
)
from bargein.transports.protocol.limits import (
    DEFAULT_MAX_REJECTIONS,
    MAX_TEXT_FRAME_CHARS,
    TRACKED_TURNS,
    UINT32_MAX,
    max_audio_bytes,
)
from bargein.transports.protocol.messages import (
    AudioEnd,
    AudioIn,
    AudioOut,
    ClientMessage,
    ErrorMessage,
    Playback,
    ServerMessage,
    SessionStart,
    SessionStarted,
    Text,
)


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

    def _remote(self, invalid: Invalid, *, fatal: bool = False) -> RemoteProtocolError:
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
    def _checked_frame(message: ClientMessage | ServerMessage, parsers: Parsers) -> str:
        """`message` as a text frame, checked with the peer's parsers and limits (so the peer
        accepts it, and any UTF-8 encoder does: no lone surrogates)."""
        obj = message_to_dict(message)
        try:
            parse_envelope(obj, parsers)
        except Invalid as invalid:
            raise LocalProtocolError(invalid.code, invalid.message) from None
        frame = dump(obj)
        if SURROGATE_RE.search(frame):
            raise LocalProtocolError(
                ErrorCode.BAD_FIELD, f"{message.TYPE!r} holds a lone UTF-16 surrogate"
            )
        if len(frame) > MAX_TEXT_FRAME_CHARS:
            raise LocalProtocolError(
                ErrorCode.FRAME_TOO_LARGE, f"{message.TYPE!r} is {len(frame)} characters"
            )
        return frame


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
                fail(ErrorCode.CLOSED, "the connection is closing")
            message: ClientMessage = parse_envelope(parse_object(frame), CLIENT_PARSERS)
            self._check_order(message)
        except Invalid as invalid:
            raise self._remote(invalid) from None
        self._apply(message)
        return message

    def receive_bytes(self, frame: bytes) -> AudioIn:
        try:
            if self.closed or self.receive_closed:
                fail(ErrorCode.CLOSED, "the connection is closing")
            if not self.started or self.sample_rate is None:
                fail(ErrorCode.NOT_STARTED, "audio before 'session.start'")
            if self.input_ended:
                fail(ErrorCode.INPUT_ENDED, "audio after 'audio.end'")
            if not frame:
                fail(ErrorCode.EMPTY_FRAME, "empty audio frame")
            limit = max_audio_bytes(self.sample_rate)
            if len(frame) > limit:
                fail(ErrorCode.FRAME_TOO_LARGE, f"audio frame over {limit} bytes (1 s)")
            if len(frame) % 2:
                fail(ErrorCode.ODD_LENGTH, "PCM16 audio frame has an odd number of bytes")
        except Invalid as invalid:
            raise self._remote(invalid) from None
        return AudioIn(np.frombuffer(frame, dtype="<i2").astype(np.int16))

    def _check_order(self, message: ClientMessage) -> None:
        if isinstance(message, SessionStart):
            if self.started:
                fail(ErrorCode.ALREADY_STARTED, "'session.start' was already received")
            return
        if not self.started:
            fail(ErrorCode.NOT_STARTED, f"{message.TYPE!r} before 'session.start'")
        if self.input_ended and isinstance(message, Text | AudioEnd):
            fail(ErrorCode.INPUT_ENDED, f"{message.TYPE!r} after 'audio.end'")
        if isinstance(message, Playback):
            sent = self._sent.get(message.turn)
            if sent is None:
                fail(ErrorCode.UNKNOWN_TURN, f"no audio was sent for turn {message.turn}")
            if message.played_samples > sent:
                fail(
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
        while len(self._sent) > TRACKED_TURNS:
            self._sent.popitem(last=False)
        return encode_audio_out(message)

    def _encode_control(self, message: ServerMessage) -> str:
        # Check with the parser the client runs, so what we send is what it accepts.
        return self._checked_frame(message, SERVER_PARSERS)


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
        frame = self._checked_frame(message, CLIENT_PARSERS)
        if isinstance(message, SessionStart):
            self.start_sent = True
            self.sample_rate = message.sample_rate
            self.output_rate = message.effective_output_rate
        elif isinstance(message, AudioEnd):
            self.input_ended = True
        return frame

    def receive(self, frame: str | bytes) -> ServerMessage:
        try:
            if isinstance(frame, str):
                message: ServerMessage = parse_envelope(parse_object(frame), SERVER_PARSERS)
            else:
                if not self.started:
                    fail(ErrorCode.NOT_STARTED, "audio before 'session.started'")
                message = decode_audio_out(frame)
        except Invalid as invalid:
            raise self._remote(invalid) from None
        if isinstance(message, SessionStarted):
            self.started = True
            self.session_id = message.session_id
            self.sample_rate, self.output_rate = message.sample_rate, message.output_rate
        elif isinstance(message, ErrorMessage) and message.fatal:
            self.closed = True
        return message
