"""The body of `POST /api/chat/stream`, validated (pure): strict JSON, then the messages."""

from __future__ import annotations

import json
from typing import Any

from bargein.runtime.history import ChatMessage
from bargein.transports.protocol.codec import reject_json_constant
from bargein.transports.responses import error_json

MAX_MESSAGES = 200
MAX_CONTENT_CHARS = 20_000
_ROLES = ("system", "user", "assistant")


class ChatRequestError(Exception):
    """A request the service refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, Any]:
        return error_json(self.code, self.message)


def parse_json_body(data: bytes) -> Any:
    """The request body as strict JSON: UTF-8, no NaN/Infinity (pure)."""
    try:
        return json.loads(data.decode("utf-8"), parse_constant=reject_json_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ChatRequestError(400, "bad_json", f"the body is not JSON: {str(exc)[:200]}") from exc


def parse_chat_request(body: Any) -> tuple[ChatMessage, ...]:
    """Validate ``{"messages": [{"role", "content"}, ...]}`` (pure)."""
    if not isinstance(body, dict):
        raise ChatRequestError(400, "not_object", "the body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ChatRequestError(400, "missing_field", "'messages' must be a non-empty array")
    if len(messages) > MAX_MESSAGES:
        raise ChatRequestError(400, "bad_field", f"more than {MAX_MESSAGES} messages")
    out: list[ChatMessage] = []
    for i, item in enumerate(messages):
        if not isinstance(item, dict):
            raise ChatRequestError(400, "bad_field", f"messages[{i}] must be an object")
        role, content = item.get("role"), item.get("content")
        if role not in _ROLES:
            raise ChatRequestError(400, "bad_field", f"messages[{i}].role must be one of {_ROLES}")
        if not isinstance(content, str) or len(content) > MAX_CONTENT_CHARS:
            raise ChatRequestError(
                400, "bad_field", f"messages[{i}].content must be a string ≤ {MAX_CONTENT_CHARS}"
            )
        out.append(ChatMessage(role, content))
    if out[-1].role != "user":
        raise ChatRequestError(400, "bad_field", "the last message must be the user's")
    return tuple(out)
