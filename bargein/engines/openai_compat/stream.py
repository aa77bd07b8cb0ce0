"""Parsing a streamed chat completion: every chunk is checked before any of it is used.

The openai SDK builds chunks without validating them (`construct`), so an upstream that sends
``"content": 5`` or ``"tool_calls": {}`` would otherwise reach the turn as a non-string and
fail far from the cause (a join raised `TypeError` in the turn). Here a malformed chunk is a
`MalformedChunk` naming the field, which the planner turns into a `PlannerError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

__all__ = ["ChunkDelta", "MalformedChunk", "PendingCall", "Round", "absorb", "parse_chunk"]


class MalformedChunk(ValueError):
    """An upstream chunk that does not have the chat.completion.chunk shape."""


@dataclass(slots=True)
class PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class Round:
    """What one streamed completion has produced so far."""

    text: list[str] = field(default_factory=list)
    calls: dict[int, PendingCall] = field(default_factory=dict)
    first_token: bool = False


@dataclass(frozen=True, slots=True)
class ToolCallPart:
    index: int
    id: str | None
    name: str | None
    arguments: str | None


@dataclass(frozen=True, slots=True)
class ChunkDelta:
    """One choice's delta, checked: text and tool-call pieces of known types."""

    content: str | None
    tool_calls: tuple[ToolCallPart, ...]


MAX_TOOL_CALL_INDEX = 127  # a model asks for a handful of calls; this bounds `Round.calls`


def parse_chunk(chunk: object) -> list[ChunkDelta]:
    """The deltas of ``chunk`` (an SDK chunk object), or `MalformedChunk` naming the field."""
    choices = getattr(chunk, "choices", None)
    if not isinstance(choices, Sequence) or isinstance(choices, str | bytes):
        raise MalformedChunk(f"choices is {_kind(choices)}, expected an array")
    deltas = []
    for i, choice in enumerate(choices):
        where = f"choices[{i}].delta"
        delta = getattr(choice, "delta", None)
        if delta is None:
            raise MalformedChunk(f"{where} is missing")
        content = _optional_str(getattr(delta, "content", None), f"{where}.content")
        raw_calls = getattr(delta, "tool_calls", None)
        parts: list[ToolCallPart] = []
        if raw_calls is not None:
            if not isinstance(raw_calls, Sequence) or isinstance(raw_calls, str | bytes):
                raise MalformedChunk(f"{where}.tool_calls is {_kind(raw_calls)}, expected an array")
            for j, part in enumerate(raw_calls):
                parts.append(_tool_call_part(part, f"{where}.tool_calls[{j}]"))
        deltas.append(ChunkDelta(content, tuple(parts)))
    return deltas


def _tool_call_part(part: object, where: str) -> ToolCallPart:
    index = getattr(part, "index", None)
    if isinstance(index, bool) or not isinstance(index, int):
        raise MalformedChunk(f"{where}.index is {_kind(index)}, expected an integer")
    if not 0 <= index <= MAX_TOOL_CALL_INDEX:
        raise MalformedChunk(f"{where}.index {index} is outside 0..{MAX_TOOL_CALL_INDEX}")
    function = getattr(part, "function", None)
    name = arguments = None
    if function is not None:
        name = _optional_str(getattr(function, "name", None), f"{where}.function.name")
        arguments = _optional_str(
            getattr(function, "arguments", None), f"{where}.function.arguments"
        )
    return ToolCallPart(
        index, _optional_str(getattr(part, "id", None), f"{where}.id"), name, arguments
    )


def _optional_str(value: object, where: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise MalformedChunk(f"{where} is {_kind(value)}, expected a string")
    return value


def _kind(value: object) -> str:
    return "missing" if value is None else f"a {type(value).__name__}"


def absorb(deltas: list[ChunkDelta], state: Round) -> list[str]:
    """Fold checked deltas into ``state``; the text pieces to stream, in order."""
    texts: list[str] = []
    for delta in deltas:
        if delta.content or delta.tool_calls:
            state.first_token = True
        for part in delta.tool_calls:
            call = state.calls.setdefault(part.index, PendingCall())
            call.id = part.id or call.id
            call.name += part.name or ""
            call.arguments += part.arguments or ""
        if delta.content:
            state.text.append(delta.content)
            texts.append(delta.content)
    return texts
