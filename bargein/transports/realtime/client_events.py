"""Client events of the Realtime GA protocol, parsed into typed commands.

Pure: `parse(frame)` returns a command or raises `RealtimeInvalid` carrying the event's
`event_id` (when it had a readable one), so the `error` event names what failed.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from typing import Any

from bargein.transports.protocol import fields
from bargein.transports.protocol.codec import strict_json_loads
from bargein.transports.realtime.config import max_tokens, modalities, tool_choice, tools
from bargein.transports.realtime.errors import (
    INVALID_EVENT,
    INVALID_JSON,
    INVALID_VALUE,
    UNKNOWN_EVENT,
    UNSUPPORTED,
    RealtimeInvalid,
    expect_object,
    param,
    refuse_unknown,
)

MAX_EVENT_ID_CHARS = 64
MAX_ITEM_TEXT_CHARS = 32768
MAX_OUTPUT_CHARS = 65536
ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


@dataclass(frozen=True, slots=True)
class SessionUpdate:
    event_id: str | None
    session: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AudioAppend:
    event_id: str | None
    audio: bytes


@dataclass(frozen=True, slots=True)
class AudioCommit:
    event_id: str | None


@dataclass(frozen=True, slots=True)
class AudioClear:
    event_id: str | None


@dataclass(frozen=True, slots=True)
class NewItem:
    """An item a client creates: a message (user/system/assistant text) or a function call
    output; `text` is what the model gets."""

    id: str | None
    type: str  # "message" | "function_call" | "function_call_output"
    role: str | None = None
    content: tuple[dict[str, Any], ...] = ()
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    output: str | None = None


@dataclass(frozen=True, slots=True)
class ItemCreate:
    event_id: str | None
    item: NewItem
    previous_item_id: str | None


@dataclass(frozen=True, slots=True)
class ItemRetrieve:
    event_id: str | None
    item_id: str


@dataclass(frozen=True, slots=True)
class ItemTruncate:
    event_id: str | None
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class ItemDelete:
    event_id: str | None
    item_id: str


@dataclass(frozen=True, slots=True)
class ResponseOptions:
    instructions: str | None = None
    output_modalities: tuple[str, ...] | None = None
    tools: tuple[Any, ...] | None = None
    tool_choice: str | None = None
    max_output_tokens: int | None = None
    max_output_tokens_given: bool = False
    metadata: dict[str, str] | None = None


@dataclass(frozen=True, slots=True)
class ResponseCreate:
    event_id: str | None
    options: ResponseOptions = field(default_factory=ResponseOptions)


@dataclass(frozen=True, slots=True)
class ResponseCancel:
    event_id: str | None
    response_id: str | None


@dataclass(frozen=True, slots=True)
class OutputAudioClear:
    event_id: str | None


Command = (
    SessionUpdate | AudioAppend | AudioCommit | AudioClear | ItemCreate | ItemRetrieve
    | ItemTruncate | ItemDelete | ResponseCreate | ResponseCancel | OutputAudioClear
)


def parse(frame: str | bytes | None) -> Command:
    if not isinstance(frame, str):  # None: how quart delivers an empty binary frame
        raise RealtimeInvalid(INVALID_EVENT, "events are JSON text frames, not binary")
    try:
        obj = strict_json_loads(frame)
    except (ValueError, RecursionError) as exc:
        raise RealtimeInvalid(INVALID_JSON, f"not JSON: {exc}"[:200]) from None
    if not isinstance(obj, dict):
        raise RealtimeInvalid(INVALID_EVENT, "an event is a JSON object")
    raw_id = obj.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) and len(raw_id) <= MAX_EVENT_ID_CHARS else None
    try:
        if raw_id is not None and event_id is None:
            raise RealtimeInvalid(INVALID_VALUE, "event_id must be a string of at most "
                                  f"{MAX_EVENT_ID_CHARS} characters", param="event_id")
        return _parse(obj, event_id)
    except RealtimeInvalid as exc:
        exc.event_id = event_id
        raise


def _parse(obj: dict[str, Any], event_id: str | None) -> Command:
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise RealtimeInvalid(INVALID_EVENT, "missing 'type'", param="type")
    keys = _KEYS.get(kind)
    if keys is None:
        raise RealtimeInvalid(UNKNOWN_EVENT, f"unknown event type {kind[:64]!r}", param="type")
    refuse_unknown(obj, keys | {"type", "event_id"}, "")
    match kind:
        case "session.update":
            return SessionUpdate(event_id, expect_object(obj.get("session"), "session"))
        case "input_audio_buffer.append":
            return AudioAppend(event_id, _audio(obj))
        case "input_audio_buffer.commit":
            return AudioCommit(event_id)
        case "input_audio_buffer.clear":
            return AudioClear(event_id)
        case "conversation.item.create":
            with param("previous_item_id"):
                previous = fields.string(obj, "previous_item_id", max_len=64, required=False)
            return ItemCreate(event_id, _item(obj.get("item")), previous)
        case "conversation.item.retrieve":
            return ItemRetrieve(event_id, _item_id(obj))
        case "conversation.item.delete":
            return ItemDelete(event_id, _item_id(obj))
        case "conversation.item.truncate":
            with param("content_index"):
                index = fields.integer(obj, "content_index", hi=0)
            with param("audio_end_ms"):
                end = fields.integer(obj, "audio_end_ms")
            return ItemTruncate(event_id, _item_id(obj), index, end)
        case "response.create":
            return ResponseCreate(event_id, _response(obj.get("response")))
        case "response.cancel":
            with param("response_id"):
                rid = fields.string(obj, "response_id", max_len=64, required=False)
            return ResponseCancel(event_id, rid)
        case "output_audio_buffer.clear":
            return OutputAudioClear(event_id)
    raise AssertionError(kind)  # every key of _KEYS is matched above


_KEYS: dict[str, frozenset[str]] = {
    "session.update": frozenset({"session"}),
    "input_audio_buffer.append": frozenset({"audio"}),
    "input_audio_buffer.commit": frozenset(),
    "input_audio_buffer.clear": frozenset(),
    "conversation.item.create": frozenset({"item", "previous_item_id"}),
    "conversation.item.retrieve": frozenset({"item_id"}),
    "conversation.item.truncate": frozenset({"item_id", "content_index", "audio_end_ms"}),
    "conversation.item.delete": frozenset({"item_id"}),
    "response.create": frozenset({"response"}),
    "response.cancel": frozenset({"response_id"}),
    "output_audio_buffer.clear": frozenset(),
}


def _audio(obj: dict[str, Any]) -> bytes:
    with param("audio"):
        text = fields.string(obj, "audio", max_len=4 * 1024 * 1024)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise RealtimeInvalid(INVALID_VALUE, "audio must be base64", param="audio") from None


def _item_id(obj: dict[str, Any]) -> str:
    with param("item_id"):
        return str(fields.string(obj, "item_id", max_len=64))


_CONTENT_TYPES = {
    "user": {"input_text", "input_audio"},
    "system": {"input_text"},
    "assistant": {"output_text", "text"},
}


def _item(value: Any) -> NewItem:
    item = expect_object(value, "item")
    kind = item.get("type")
    with param("item.id"):
        item_id = fields.string(item, "id", max_len=64, required=False, pattern=ID_RE)
    common = {"id", "type", "object", "status"}
    if kind == "message":
        refuse_unknown(item, frozenset(common | {"role", "content"}), "item")
        role = item.get("role")
        if not isinstance(role, str) or role not in _CONTENT_TYPES:  # a list is unhashable
            raise RealtimeInvalid(INVALID_VALUE, "item.role must be user, system or assistant",
                                  param="item.role")
        content = item.get("content")
        if not isinstance(content, list) or not content or len(content) > 16:
            raise RealtimeInvalid(INVALID_VALUE, "item.content must be a list of 1-16 parts",
                                  param="item.content")
        parts: list[dict[str, Any]] = []
        for i, raw in enumerate(content):
            where = f"item.content[{i}]"
            part = expect_object(raw, where)
            ptype = part.get("type")
            if not isinstance(ptype, str) or ptype not in _CONTENT_TYPES[role]:
                raise RealtimeInvalid(UNSUPPORTED, f"{where}.type {str(ptype)[:32]!r} is not "
                                      f"supported for a {role} message", param=f"{where}.type")
            if ptype == "input_audio":
                # Audio items need our recognizer; we take their transcript when given.
                refuse_unknown(part, frozenset({"type", "audio", "transcript"}), where)
                with param(f"{where}.transcript"):
                    text = fields.string(part, "transcript", max_len=MAX_ITEM_TEXT_CHARS)
                parts.append({"type": "input_audio", "transcript": text})
            else:
                refuse_unknown(part, frozenset({"type", "text"}), where)
                with param(f"{where}.text"):
                    text = fields.string(part, "text", max_len=MAX_ITEM_TEXT_CHARS)
                parts.append({"type": ptype, "text": text})
        return NewItem(item_id, "message", role=role, content=tuple(parts))
    if kind == "function_call_output":
        refuse_unknown(item, frozenset(common | {"call_id", "output"}), "item")
        with param("item.call_id"):
            call_id = fields.string(item, "call_id", max_len=64)
        with param("item.output"):
            output = fields.string(item, "output", max_len=MAX_OUTPUT_CHARS)
        return NewItem(item_id, kind, call_id=call_id, output=output)
    if kind == "function_call":
        refuse_unknown(item, frozenset(common | {"call_id", "name", "arguments"}), "item")
        with param("item.call_id"):
            call_id = fields.string(item, "call_id", max_len=64)
        with param("item.name"):
            name = fields.string(item, "name", max_len=64)
        with param("item.arguments"):
            arguments = fields.string(item, "arguments", max_len=MAX_OUTPUT_CHARS)
        return NewItem(item_id, kind, call_id=call_id, name=name, arguments=arguments)
    raise RealtimeInvalid(UNSUPPORTED, "item.type must be message, function_call or "
                          "function_call_output", param="item.type")


_RESPONSE_KEYS = frozenset({"instructions", "output_modalities", "tools", "tool_choice",
                            "max_output_tokens", "metadata", "conversation", "input", "audio",
                            "prompt"})


def _response(value: Any) -> ResponseOptions:
    if value is None:
        return ResponseOptions()
    r = expect_object(value, "response")
    refuse_unknown(r, _RESPONSE_KEYS, "response")
    if r.get("conversation", "auto") != "auto":
        raise RealtimeInvalid(UNSUPPORTED, "only conversation 'auto' (out-of-band responses "
                              "are not supported)", param="response.conversation")
    for key in ("input", "prompt"):
        if r.get(key) is not None:
            raise RealtimeInvalid(UNSUPPORTED, f"response.{key} is not supported",
                                  param=f"response.{key}")
    with param("response.instructions"):
        instructions = fields.string(r, "instructions", max_len=32768, required=False)
    metadata = r.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict) or len(metadata) > 16 or not all(
            isinstance(k, str) and len(k) <= 64 and isinstance(v, str) and len(v) <= 512
            for k, v in metadata.items()
        ):
            raise RealtimeInvalid(INVALID_VALUE, "response.metadata: at most 16 string pairs",
                                  param="response.metadata")
    given = r.get("max_output_tokens") is not None
    return ResponseOptions(
        instructions=instructions,
        output_modalities=None if r.get("output_modalities") is None
        else modalities(r["output_modalities"], "response.output_modalities"),
        tools=None if r.get("tools") is None else tools(r["tools"], "response.tools"),
        tool_choice=None if r.get("tool_choice") is None
        else tool_choice(r["tool_choice"], "response.tool_choice"),
        max_output_tokens=max_tokens(r["max_output_tokens"], "response.max_output_tokens")
        if given else None,
        max_output_tokens_given=given,
        metadata=metadata,
    )
