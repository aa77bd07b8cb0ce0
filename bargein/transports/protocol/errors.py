"""Stable error codes and the exceptions the codec raises."""

from __future__ import annotations

import enum
from typing import NoReturn


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
    BAD_RESUME_SECRET = "bad_resume_secret"
    SESSION_TAKEN_OVER = "session_taken_over"
    HANDSHAKE_TIMEOUT = "handshake_timeout"
    IDLE_TIMEOUT = "idle_timeout"
    TOO_MANY_SESSIONS = "too_many_sessions"
    # Reported by the session (input it refused), not the codec.
    FLOOR_BUSY = "floor_busy"
    RATE_LIMITED = "rate_limited"
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


class Invalid(Exception):
    """A field or frame failed validation. The connection object turns it into a
    `RemoteProtocolError` (received) or a `LocalProtocolError` (about to be sent)."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def fail(code: ErrorCode, message: str) -> NoReturn:
    raise Invalid(code, message)
