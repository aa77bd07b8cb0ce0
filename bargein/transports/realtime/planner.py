"""The planner a Realtime session runs: the model's context comes from the conversation items.

`RealtimePlanner` wraps any `PlannerEngine`. For each turn it asks the adapter for the
response's context (instructions + items, after any transcription still running), calls the
inner planner with it, stops after `max_output_tokens` text deltas, and turns a
`FunctionCall` output of a tool-calling planner into a `function_call` item for the client.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from bargein.engines.base import PlannerEngine, PlanOutput, PlanRequest, Sink, TextDelta
from bargein.transports.realtime.config import Tool
from bargein.transports.realtime.conversation import ModelRequest


@dataclass(frozen=True, slots=True)
class FunctionCall:
    """A tool-calling planner asks the client to run `name` with JSON `arguments`."""

    name: str
    arguments: str


@runtime_checkable
class ToolCallingPlanner(Protocol):
    """A planner that can call the client's tools (plain planners never do)."""

    name: str

    async def respond_with_tools(
        self,
        request: PlanRequest,
        tools: tuple[Tool, ...],
        tool_choice: str,
        out: Sink[PlanOutput | FunctionCall],
    ) -> None: ...


class Hooks(Protocol):
    async def model_request(self, turn: int) -> ModelRequest | None:
        """None: the turn is no response (create_response false): say nothing."""
        ...

    def function_call(self, turn: int, call: FunctionCall) -> None: ...


class _Limit(Exception):
    pass


class _Relay:
    """Forwards the inner planner's output; function calls go to the client, text stops at
    the token limit."""

    def __init__(self, out: Sink[PlanOutput], hooks: Hooks, turn: int, limit: int | None):
        self.out, self.hooks, self.turn, self.limit = out, hooks, turn, limit
        self.deltas = 0

    async def send(self, value: PlanOutput | FunctionCall, /) -> None:
        if isinstance(value, FunctionCall):
            self.hooks.function_call(self.turn, value)
            return
        if isinstance(value, TextDelta):
            if self.limit is not None and self.deltas >= self.limit:
                raise _Limit
            self.deltas += 1
        await self.out.send(value)


class RealtimePlanner:
    def __init__(self, inner: PlannerEngine, hooks: Hooks) -> None:
        self.inner = inner
        self.hooks = hooks
        self.name = f"realtime+{inner.name}"

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        model = await self.hooks.model_request(request.turn)
        if model is None:
            return
        inner_request = PlanRequest(request.turn, model.messages)
        relay = _Relay(out, self.hooks, request.turn, model.max_output_tokens)
        try:
            if model.tools and isinstance(self.inner, ToolCallingPlanner):
                await self.inner.respond_with_tools(inner_request, model.tools,
                                                    model.tool_choice, relay)
            else:
                await self.inner.respond(inner_request, relay)
        except _Limit:
            return
