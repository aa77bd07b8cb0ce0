"""A planner over any OpenAI-compatible chat completions endpoint: streamed text, tool calls,
failover between endpoints before the first token.

This module is the failover and the turn's loop of tool rounds; building the request is in
`request`, checking and folding streamed chunks in `stream`, running tools in `tools`.

Everything runs in the caller's task, so the turn's cancel scope covers the HTTP stream and the
tools: a barge-in closes the stream at once, and a tool call from a cancelled generation never
starts (pipecat #4997). Tools marked ``interruptible=False`` run shielded (bounded) to the end.
"""

from __future__ import annotations

import inspect
import logging
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, TypeVar, overload

import httpx2
import openai
import trio
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from bargein.engines.base import PlanOutput, PlanRequest, Sink, Status, TextDelta
from bargein.engines.errors import PlannerError
from bargein.engines.openai_compat._client import (
    CLOSE_BOUND,
    Endpoint,
    LazyClient,
    describe,
    is_transient,
)
from bargein.engines.openai_compat.request import (
    INTERRUPTED_MARKER,
    SPEECH_SYSTEM_PROMPT,
    build_messages,
    request_args,
)
from bargein.engines.openai_compat.stream import (
    ChunkDelta,
    MalformedChunk,
    PendingCall,
    Round,
    absorb,
    parse_chunk,
)
from bargein.engines.openai_compat.tools import (
    Tool,
    ToolFn,
    ToolResult,
    run_tool,
    schema_from_signature,
)
from bargein.runtime.history import ChatMessage

__all__ = [
    "INTERRUPTED_MARKER",
    "SPEECH_SYSTEM_PROMPT",
    "OpenAIPlanner",
    "Tool",
    "ToolResult",
    "schema_from_signature",
]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=ToolFn)


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

    def _record(self, result: ToolResult) -> None:
        self.tool_results.append(result)
        if self.on_tool_result is not None:
            self.on_tool_result(result)

    @property
    def tools(self) -> dict[str, Tool]:
        return dict(self._tools)

    def build_messages(self, history: Sequence[ChatMessage]) -> list[ChatCompletionMessageParam]:
        """The request's messages: our speech prompt, then the heard history, with each
        interrupted assistant reply (already cut to what was heard) marked as such."""
        return build_messages(history, self.system_prompt, self.interrupted_marker)

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
                tool = self._tools.get(call.name)
                output = await run_tool(tool, call, request.turn, out, self._record)
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
    ) -> list[PendingCall]:
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
    ) -> list[PendingCall]:
        endpoint = self.endpoints[index]
        state = Round()
        stream: openai.AsyncStream[ChatCompletionChunk] | None = None
        # The deadline of this scope is `first_token_timeout` until the first token, then
        # `stall_timeout` from the latest chunk; it is lifted while `out` applies backpressure.
        deadline = _after(self.first_token_timeout)
        timeout_scope = trio.CancelScope(deadline=deadline)
        try:
            with timeout_scope:
                args = request_args(
                    endpoint,
                    messages,
                    tools=[tool.spec() for tool in self._tools.values()],
                    allow_tools=allow_tools,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                )
                stream = await self._client(index).chat.completions.create(**args)
                chunks = stream.__aiter__()
                while (deltas := await _next_deltas(chunks, endpoint)) is not None:
                    for text in absorb(deltas, state):
                        timeout_scope.deadline = math.inf  # a slow consumer is not a stall
                        await out.send(TextDelta(text))
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

    def _error(self, endpoint: Endpoint, exc: BaseException, state: Round) -> PlannerError:
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


async def _next_deltas(
    chunks: AsyncIterator[ChatCompletionChunk], endpoint: Endpoint
) -> list[ChunkDelta] | None:
    """The next chunk's checked deltas (None at the end). A malformed chunk (or one the SDK
    cannot even decode) is a `PlannerError` naming the field, logged with its traceback: an
    upstream bug, never retried elsewhere (the reply may have started)."""
    try:
        chunk = await chunks.__anext__()
    except StopAsyncIteration:
        return None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:  # the SDK's decoding
        log.error("undecodable chunk from planner endpoint %s", endpoint.label, exc_info=True)
        raise PlannerError(f"planner endpoint {endpoint.label} sent an undecodable chunk") from exc
    try:
        return parse_chunk(chunk)
    except MalformedChunk as exc:
        log.error("malformed chunk from planner endpoint %s", endpoint.label, exc_info=True)
        raise PlannerError(
            f"planner endpoint {endpoint.label} sent a malformed chunk: {exc}"
        ) from exc


def _after(seconds: float | None) -> float:
    return math.inf if seconds is None else trio.current_time() + seconds
