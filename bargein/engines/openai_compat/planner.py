"""A planner over any OpenAI-compatible chat completions endpoint: streamed text, tool calls,
failover between endpoints before the first token.

Everything runs in the caller's task, so the turn's cancel scope covers the HTTP stream and the
tools: a barge-in closes the stream at once, and a tool call from a cancelled generation never
starts (pipecat #4997). Tools marked ``interruptible=False`` run shielded (bounded) to the end.
"""

from __future__ import annotations

import inspect
import json
import logging
import math
import types
import typing
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

import httpx2
import openai
import trio
from openai.types.chat import (
    ChatCompletionChunk,
    ChatCompletionFunctionToolParam,
    ChatCompletionMessageParam,
)

from bargein.engines.base import PlanOutput, PlanRequest, Sink, Status, TextDelta
from bargein.engines.errors import PlannerError
from bargein.engines.openai_compat._client import (
    CLOSE_BOUND,
    Endpoint,
    LazyClient,
    describe,
    is_transient,
)
from bargein.runtime.history import ChatMessage

log = logging.getLogger(__name__)

INTERRUPTED_MARKER = "[interrupted by the user]"

SPEECH_SYSTEM_PROMPT = (
    "You are a helpful voice assistant. Everything you write is spoken aloud by a speech "
    "synthesizer, so answer in short, plain, conversational sentences. Never use markdown, "
    "lists, headings, emoji, code or links; say numbers and symbols the way a person would. "
    f"An assistant message ending in {INTERRUPTED_MARKER} was cut off by the user: they heard "
    "only the words before the marker, so do not assume they heard the rest. Never write that "
    "marker yourself."
)

ToolFn = Callable[..., Awaitable[object]]
F = TypeVar("F", bound=ToolFn)


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


@dataclass(slots=True)
class _PendingCall:
    id: str = ""
    name: str = ""
    arguments: str = ""


@dataclass(slots=True)
class _Round:
    text: list[str] = field(default_factory=list)
    calls: dict[int, _PendingCall] = field(default_factory=dict)
    first_token: bool = False


class _Unavailable(Exception):
    """This endpoint failed before its first token: the next one may take over."""


class OpenAIPlanner:
    """`PlannerEngine` over OpenAI-compatible chat completions (OpenAI, vLLM, llama.cpp, Ollama).

    `endpoints` are tried in order; one that fails before its first token (connection refused,
    5xx/429, or no token within `first_token_timeout` seconds) hands over to the next and is
    skipped for `failover_cooldown` seconds. A failure after the first token (including no data
    for `stall_timeout` seconds) raises `PlannerError`: the reply is never restarted elsewhere,
    because the user may have heard part of it. Time spent waiting for the consumer of `out`
    (backpressure) never counts towards either timeout.
    """

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str = "gpt-4o-mini",
        api_key: str | None = None,
        endpoints: Sequence[Endpoint] | None = None,
        system_prompt: str | None = SPEECH_SYSTEM_PROMPT,
        temperature: float | None = None,
        max_tokens: int | None = None,
        first_token_timeout: float | None = 10.0,
        stall_timeout: float | None = 15.0,
        failover_cooldown: float = 30.0,
        max_tool_rounds: int = 4,
        interrupted_marker: str = INTERRUPTED_MARKER,
        http_client: httpx2.AsyncClient | None = None,
        on_tool_result: Callable[[ToolResult], None] | None = None,
    ) -> None:
        self.endpoints: tuple[Endpoint, ...] = (
            tuple(endpoints) if endpoints else (Endpoint(base_url, model, api_key),)
        )
        self.system_prompt = system_prompt
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.first_token_timeout = first_token_timeout
        self.stall_timeout = stall_timeout
        self.failover_cooldown = failover_cooldown
        self.max_tool_rounds = max_tool_rounds
        self.interrupted_marker = interrupted_marker
        self.on_tool_result = on_tool_result
        # The last completed tool calls, newest last (shared by all sessions using this planner).
        self.tool_results: deque[ToolResult] = deque(maxlen=256)
        self._tools: dict[str, Tool] = {}
        self._clients = [LazyClient(e, http_client) for e in self.endpoints]
        self._failed_until: dict[int, float] = {}

    # -- configuration -------------------------------------------------------------------------

    @overload
    def tool(
        self,
        fn: F,
        *,
        name: str | None = ...,
        description: str | None = ...,
        parameters: dict[str, Any] | None = ...,
        interruptible: bool = ...,
        status: str = ...,
        timeout: float = ...,
    ) -> F: ...

    @overload
    def tool(
        self,
        fn: None = ...,
        *,
        name: str | None = ...,
        description: str | None = ...,
        parameters: dict[str, Any] | None = ...,
        interruptible: bool = ...,
        status: str = ...,
        timeout: float = ...,
    ) -> Callable[[F], F]: ...

    def tool(
        self,
        fn: F | None = None,
        *,
        name: str | None = None,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        interruptible: bool = True,
        status: str = "Looking that up…",
        timeout: float = 10.0,
    ) -> F | Callable[[F], F]:
        """Register an async function as a tool; usable as `planner.tool(fn)` or `@planner.tool()`.

        `parameters` is a JSON schema; without it one is derived from the signature. A tool with
        `interruptible=False` is not cancelled by a barge-in: it runs shielded, bounded by
        `timeout` seconds, and its result is kept in `tool_results` / `on_tool_result`.
        """

        def register(fn: F) -> F:
            candidate: object = fn  # a separate name: the check must not narrow `fn`'s type
            if not inspect.iscoroutinefunction(candidate):
                raise TypeError(f"tool {fn!r} must be an async function")
            tool_name = name or fn.__name__
            doc = inspect.getdoc(fn)
            self._tools[tool_name] = Tool(
                fn=fn,
                name=tool_name,
                description=description or (doc.splitlines()[0] if doc else tool_name),
                parameters=parameters if parameters is not None else schema_from_signature(fn),
                interruptible=interruptible,
                status=status,
                timeout=timeout,
            )
            return fn

        return register if fn is None else register(fn)

    @property
    def tools(self) -> dict[str, Tool]:
        return dict(self._tools)

    def build_messages(self, history: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
        """The request's messages: our speech prompt, then the heard history, with each
        interrupted assistant reply (already cut to what was heard) marked as such."""
        messages: list[ChatCompletionMessageParam] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        for message in history:
            if message.role == "assistant":
                content = message.content
                if message.interrupted:
                    content = f"{content} {self.interrupted_marker}".lstrip()
                messages.append({"role": "assistant", "content": content})
            elif message.role == "user":
                messages.append({"role": "user", "content": message.content})
            else:
                messages.append({"role": "system", "content": message.content})
        return messages

    async def aclose(self) -> None:
        with trio.move_on_after(CLOSE_BOUND, shield=True):
            for client in self._clients:
                await client.aclose()  # a lent http client stays the caller's to close

    async def __aenter__(self) -> OpenAIPlanner:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- PlannerEngine -------------------------------------------------------------------------

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        messages = self.build_messages(request.messages)
        for round_no in range(self.max_tool_rounds + 1):
            # The last round still lists the tools (the history refers to them) but forbids calls.
            last = round_no == self.max_tool_rounds
            calls = await self._round(messages, out, allow_tools=not last)
            if not calls:
                return
            if last:
                raise PlannerError(f"the model kept calling tools after {round_no} rounds")
            messages.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": call.id,
                            "type": "function",
                            "function": {"name": call.name, "arguments": call.arguments},
                        }
                        for call in calls
                    ],
                }
            )
            for call in calls:
                # A tool call from a generation cancelled since it was streamed never starts.
                await trio.lowlevel.checkpoint()
                output = await self._run_tool(call, request.turn, out)
                messages.append({"role": "tool", "tool_call_id": call.id, "content": output})

    # -- streaming and failover -----------------------------------------------------------------

    def _client(self, index: int) -> openai.AsyncOpenAI:
        return self._clients[index].client()

    def _order(self) -> list[int]:
        """Endpoints in configured order, those that failed recently moved to the back."""
        now = trio.current_time()
        indices = range(len(self.endpoints))
        healthy = [i for i in indices if self._failed_until.get(i, -math.inf) <= now]
        return healthy + [i for i in indices if i not in healthy]

    async def _round(
        self,
        messages: list[ChatCompletionMessageParam],
        out: Sink[PlanOutput],
        *,
        allow_tools: bool,
    ) -> list[_PendingCall]:
        failures: list[str] = []
        order = self._order()
        for position, index in enumerate(order):
            try:
                return await self._stream(index, messages, out, allow_tools=allow_tools)
            except _Unavailable as failure:
                self._failed_until[index] = trio.current_time() + self.failover_cooldown
                label = self.endpoints[index].label
                failures.append(f"{label}: {failure}")
                log.warning("planner endpoint %s failed before its first token: %s", label, failure)
                if position + 1 < len(order):
                    following = self.endpoints[order[position + 1]].label
                    await out.send(Status(kind="info", text=f"failover to {following} ({failure})"))
        raise PlannerError("no planner endpoint answered: " + "; ".join(failures))

    async def _stream(
        self,
        index: int,
        messages: list[ChatCompletionMessageParam],
        out: Sink[PlanOutput],
        *,
        allow_tools: bool,
    ) -> list[_PendingCall]:
        endpoint = self.endpoints[index]
        state = _Round()
        stream: openai.AsyncStream[ChatCompletionChunk] | None = None
        # The deadline of this scope is `first_token_timeout` until the first token, then
        # `stall_timeout` from the latest chunk; it is lifted while `out` applies backpressure.
        deadline = _after(self.first_token_timeout)
        timeout_scope = trio.CancelScope(deadline=deadline)
        try:
            with timeout_scope:
                stream = await self._client(index).chat.completions.create(
                    **self._request_args(endpoint, messages, allow_tools)
                )
                async for chunk in stream:
                    await self._absorb(chunk, state, out, timeout_scope)
                    if state.first_token:
                        timeout_scope.deadline = _after(self.stall_timeout)
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            if state.first_token or not is_transient(exc):
                raise self._error(endpoint, exc, state) from exc
            raise _Unavailable(describe(exc)) from exc
        finally:
            if stream is not None:
                # Close the HTTP stream now (not at garbage collection) even when cancelled, so
                # the server sees the client go away at once.
                with trio.move_on_after(CLOSE_BOUND, shield=True):
                    await stream.close()
        if timeout_scope.cancelled_caught:
            if state.first_token:
                raise PlannerError(
                    f"planner stream from {endpoint.label} stalled: no data for "
                    f"{self.stall_timeout} s after {len(''.join(state.text))} characters"
                )
            raise _Unavailable(f"no first token within {self.first_token_timeout} s")
        return [call for _, call in sorted(state.calls.items())]

    def _request_args(
        self,
        endpoint: Endpoint,
        messages: list[ChatCompletionMessageParam],
        allow_tools: bool,
    ) -> dict[str, Any]:
        args: dict[str, Any] = {
            "model": endpoint.model,
            # The SDK walks every message against its TypedDicts before sending (~0.1 ms per
            # message, so a long conversation adds milliseconds to every turn); ours are plain
            # JSON already, so they go in `extra_body`, which is sent as is and sets the same key.
            "messages": [],
            "extra_body": {"messages": messages},
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.temperature is not None:
            args["temperature"] = self.temperature
        if self.max_tokens is not None:
            args["max_tokens"] = self.max_tokens
        if self._tools:
            args["tools"] = [tool.spec() for tool in self._tools.values()]
            if not allow_tools:
                args["tool_choice"] = "none"
        return args

    async def _absorb(
        self,
        chunk: ChatCompletionChunk,
        state: _Round,
        out: Sink[PlanOutput],
        timeout_scope: trio.CancelScope,
    ) -> None:
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content or delta.tool_calls:
                state.first_token = True
            for part in delta.tool_calls or ():
                call = state.calls.setdefault(part.index, _PendingCall())
                call.id = part.id or call.id
                if part.function is not None:
                    call.name += part.function.name or ""
                    call.arguments += part.function.arguments or ""
            if delta.content:
                state.text.append(delta.content)
                timeout_scope.deadline = math.inf  # a slow consumer is not a stalled server
                await out.send(TextDelta(delta.content))

    def _error(self, endpoint: Endpoint, exc: BaseException, state: _Round) -> PlannerError:
        if state.first_token:
            return PlannerError(
                f"planner stream from {endpoint.label} broke after the first token "
                f"({len(''.join(state.text))} characters streamed): {describe(exc)}"
            )
        hint = ""
        if isinstance(exc, openai.AuthenticationError):
            hint = " (check the API key: --llm-api-key or OPENAI_API_KEY)"
        elif isinstance(exc, openai.NotFoundError):
            hint = " (check the base URL and model name)"
        return PlannerError(f"planner endpoint {endpoint.label} refused: {describe(exc)}{hint}")

    # -- tools --------------------------------------------------------------------------------

    async def _run_tool(self, call: _PendingCall, turn: int, out: Sink[PlanOutput]) -> str:
        """Run one tool call in this task; return the tool message's content for the model."""
        tool = self._tools.get(call.name)
        if tool is None:
            return _tool_error(f"there is no tool named {call.name!r}")
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = None
        if not isinstance(arguments, dict):
            return _tool_error(f"arguments must be a JSON object, got {call.arguments!r}")
        await out.send(Status(kind="tool_started", text=tool.status, tool=tool.name))
        if tool.interruptible:
            output, ok = await _call_tool(tool, arguments)
        else:
            # Started tools with side effects (booking, hanging up) finish even on barge-in.
            with trio.CancelScope(shield=True):
                with trio.move_on_after(tool.timeout) as bound:
                    output, ok = await _call_tool(tool, arguments)
                if bound.cancelled_caught:
                    output, ok = _tool_error(f"did not finish within {tool.timeout} s"), False
        result = ToolResult(turn=turn, name=tool.name, arguments=arguments, output=output, ok=ok)
        self.tool_results.append(result)
        if self.on_tool_result is not None:
            self.on_tool_result(result)
        text = "done" if ok else f"failed: {output}"
        await out.send(Status(kind="tool_finished", text=text, tool=tool.name))
        return output


async def _call_tool(tool: Tool, arguments: dict[str, Any]) -> tuple[str, bool]:
    try:
        result = await tool.fn(**arguments)
    except Exception as exc:
        # The model is told and can apologise or retry; the turn goes on.
        log.warning("tool %s failed", tool.name, exc_info=True)
        return _tool_error(f"{type(exc).__name__}: {exc}"), False
    if isinstance(result, str):
        return result, True
    return json.dumps(result, default=str), True


def _after(seconds: float | None) -> float:
    return math.inf if seconds is None else trio.current_time() + seconds


def _tool_error(message: str) -> str:
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
