"""Errors a Realtime client gets: an `error` server event naming the failing `event_id`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bargein.transports.protocol.errors import ErrorCode, Invalid

# The `error.code` values we send (docs/realtime.md lists when each is sent).
INVALID_JSON = "invalid_json"
INVALID_EVENT = "invalid_event"
UNKNOWN_EVENT = "unknown_event"
UNKNOWN_PARAMETER = "unknown_parameter"
MISSING_PARAMETER = "missing_required_parameter"
INVALID_VALUE = "invalid_value"
UNSUPPORTED = "unsupported"
ITEM_NOT_FOUND = "item_not_found"
AUDIO_END_BEYOND = "audio_end_ms_beyond_audio"
BUFFER_EMPTY = "input_audio_buffer_commit_empty"
BUFFER_FULL = "input_audio_buffer_full"
ACTIVE_RESPONSE = "conversation_already_has_active_response"
NO_ACTIVE_RESPONSE = "response_cancel_not_active"
SERVER_ERROR = "server_error"
RATE_LIMITED = "rate_limited"


class RealtimeInvalid(Exception):
    """A client event we refuse. `param` is the dotted path of the failing field."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        param: str | None = None,
        event_id: str | None = None,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id
        self.kind = kind

    def to_event(self) -> dict[str, Any]:
        return error_event(self.code, self.message, self.param, self.event_id, self.kind)


def error_event(
    code: str,
    message: str,
    param: str | None = None,
    event_id: str | None = None,
    kind: str = "invalid_request_error",
) -> dict[str, Any]:
    return {
        "type": "error",
        "error": {
            "type": kind,
            "code": code,
            "message": message,
            "param": param,
            "event_id": event_id,
        },
    }


@contextmanager
def param(path: str) -> Iterator[None]:
    """Turn the shared field validators' `Invalid` into a `RealtimeInvalid` naming `path`."""
    try:
        yield
    except Invalid as exc:
        code = MISSING_PARAMETER if exc.code is ErrorCode.MISSING_FIELD else INVALID_VALUE
        raise RealtimeInvalid(code, f"{path}: {exc.message}", param=path) from None


def refuse_unknown(obj: dict[str, Any], known: frozenset[str], path: str) -> None:
    for key in obj:
        if key not in known:
            where = f"{path}.{key}" if path else key
            raise RealtimeInvalid(UNKNOWN_PARAMETER, f"unknown parameter {where!r}", param=where)


def expect_object(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RealtimeInvalid(INVALID_VALUE, f"{path} must be an object", param=path)
    return value
