"""Tools the planner offers the model: registration records, JSON schemas from signatures, and
running one call in the turn's task (shielded and bounded when not interruptible)."""

from __future__ import annotations

import inspect
import json
import logging
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from openai.types.chat import ChatCompletionFunctionToolParam

from bargein.engines.base import PlanOutput, Sink, Status
from bargein.engines.openai_compat.stream import PendingCall

log = logging.getLogger("bargein.engines.openai_compat.planner")

ToolFn = Callable[..., Awaitable[object]]


@dataclass(frozen=True, slots=True)
class Tool:
    fn: ToolFn
    name: str
    description: str
    parameters: dict[str, Any]
    interruptible: bool
    status: str
    timeout: float  # bound on a non-interruptible tool's shielded run

    def spec(self) -> ChatCompletionFunctionToolParam:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True, slots=True)
class ToolResult:
    """A tool call that ran to the end (or failed), kept even if its turn was cancelled."""

    turn: int
    name: str
    arguments: dict[str, Any]
    output: str
    ok: bool


async def run_tool(
    tool: Tool | None,
    call: PendingCall,
    turn: int,
    out: Sink[PlanOutput],
    record: Callable[[ToolResult], None],
) -> str:
    """Run one tool call in this task; return the tool message's content for the model. A tool
    that ran is `record`ed before anything else can be cancelled (its side effects happened)."""
    if tool is None:
        return tool_error(f"there is no tool named {call.name!r}")
    try:
        arguments = json.loads(call.arguments or "{}")
    except ValueError:
        arguments = None
    if not isinstance(arguments, dict):
        return tool_error(f"arguments must be a JSON object, got {call.arguments!r}")
    await out.send(Status(kind="tool_started", text=tool.status, tool=tool.name))
    if tool.interruptible:
        output, ok = await _call_tool(tool, arguments)
    else:
        # Started tools with side effects (booking, hanging up) finish even on barge-in.
        with trio.CancelScope(shield=True):
            with trio.move_on_after(tool.timeout) as bound:
                output, ok = await _call_tool(tool, arguments)
            if bound.cancelled_caught:
                output, ok = tool_error(f"did not finish within {tool.timeout} s"), False
    record(ToolResult(turn=turn, name=tool.name, arguments=arguments, output=output, ok=ok))
    text = "done" if ok else f"failed: {output}"
    await out.send(Status(kind="tool_finished", text=text, tool=tool.name))
    return output


async def _call_tool(tool: Tool, arguments: dict[str, Any]) -> tuple[str, bool]:
    try:
        result = await tool.fn(**arguments)
    except Exception as exc:
        # The model is told and can apologise or retry; the turn goes on.
        log.warning("tool %s failed", tool.name, exc_info=True)
        return tool_error(f"{type(exc).__name__}: {exc}"), False
    if isinstance(result, str):
        return result, True
    return json.dumps(result, default=str), True


def tool_error(message: str) -> str:
    return json.dumps({"error": message})


_JSON_TYPES: dict[object, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    list: "array",
    tuple: "array",
    dict: "object",
}


def schema_from_signature(fn: Callable[..., object]) -> dict[str, Any]:
    """A simple JSON schema for `fn`'s keyword-callable parameters (types from annotations)."""
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):
        hints = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    for param in inspect.signature(fn).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
            continue
        properties[param.name] = _json_type(hints.get(param.name))
        if param.default is param.empty:
            required.append(param.name)
    return {"type": "object", "properties": properties, "required": required}


def _json_type(hint: object) -> dict[str, Any]:
    origin = typing.get_origin(hint)
    if origin is typing.Literal:
        return {"enum": list(typing.get_args(hint))}
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        return _json_type(options[0]) if len(options) == 1 else {}
    kind = _JSON_TYPES.get(origin or hint)
    return {"type": kind} if kind else {}
