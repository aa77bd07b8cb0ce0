"""OpenAIPlanner through the real openai SDK against the local server over 127.0.0.1."""

from __future__ import annotations

import json
import logging
import re
import socket
from collections.abc import Callable
from typing import Any

import pytest
import trio

from bargein.engines.base import Engines, PlanOutput, PlanRequest, Status, TextDelta
from bargein.engines.errors import PlannerError
from bargein.engines.openai_compat import (
    INTERRUPTED_MARKER,
    SPEECH_SYSTEM_PROMPT,
    Endpoint,
    OpenAIPlanner,
)
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.session import SessionConfig, open_session
from bargein.testing.memory import MemoryTransport
from bargein.testing.openai_server import (
    ChatReply,
    OpenAIServer,
    ServerConfig,
    ToolCall,
    serve_openai,
)
from bargein.testing.scripted import ScriptedStt, ScriptedTts

HANG_GUARD = 20  # seconds; a hang guard, not a speed bound
LONG = 30.0  # a delay no test waits out: scheduled server events that must never happen

USER = (ChatMessage("user", "What's the weather in Paris?"),)


async def start(nursery: trio.Nursery, config: ServerConfig) -> OpenAIServer:
    server: OpenAIServer = await nursery.start(serve_openai, config)
    return server


def request(messages: tuple[ChatMessage, ...] = USER, turn: int = 1) -> PlanRequest:
    return PlanRequest(turn=turn, messages=messages)


def refused_url() -> str:
    """A URL on which nothing listens: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def collect(
    planner: OpenAIPlanner,
    req: PlanRequest,
    on_output: Callable[[PlanOutput, trio.CancelScope], None] | None = None,
    turn: trio.CancelScope | None = None,
) -> tuple[list[PlanOutput], trio.CancelScope]:
    """Run respond() in a cancel scope like a turn's, collecting what it streams."""
    outputs: list[PlanOutput] = []
    send, receive = trio.open_memory_channel[PlanOutput](0)
    turn = turn or trio.CancelScope()
    with turn:

        async def consume() -> None:
            async for item in receive:
                outputs.append(item)
                if on_output is not None:
                    on_output(item, turn)

        error: PlannerError | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(consume)
            async with send:
                try:
                    await planner.respond(req, send)
                except PlannerError as exc:  # unwrapped from the nursery's exception group
                    error = exc
        if error is not None:
            raise error
    return outputs, turn


def text_of(outputs: list[PlanOutput]) -> str:
    return "".join(o.text for o in outputs if isinstance(o, TextDelta))


def statuses(outputs: list[PlanOutput]) -> list[tuple[str, str | None]]:
    return [(o.kind, o.tool) for o in outputs if isinstance(o, Status)]


async def test_tokens_stream_before_the_completion_ends(nursery: trio.Nursery) -> None:
    reply = ChatReply("One two three.", token_delay=LONG)
    server = await start(nursery, ServerConfig(chat=[reply]))
    first: list[tuple[str, int, float | None]] = []

    def on_output(item: PlanOutput, turn: trio.CancelScope) -> None:
        req = server.requests[0]
        first.append((item.text, req.tokens_sent, req.completed_at))
        turn.cancel()

    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m") as planner:
            await collect(planner, request(), on_output)
    # The first token reached us while the server was still holding back the second.
    assert first == [("One", 1, None)]


async def test_cancel_closes_the_stream_promptly_and_no_later_tool_call_runs(
    nursery: trio.Nursery,
) -> None:
    reply = ChatReply(
        "Goodbye.",
        tool_calls=(ToolCall("end_call"),),
        tool_call_delay=0.3,  # the tool call is streamed after the barge-in
    )
    server = await start(nursery, ServerConfig(chat=[reply]))
    ran: list[str] = []
    cancelled_at: list[float] = []

    def barge_in(item: PlanOutput, turn: trio.CancelScope) -> None:
        cancelled_at.append(trio.current_time())
        turn.cancel()

    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m") as planner:

            @planner.tool()
            async def end_call() -> str:
                """Hang up."""
                ran.append("end_call")
                return "ok"

            outputs, turn = await collect(planner, request(), barge_in)
            closed = await server.wait_closed(0)
            # Give the server time to have streamed the tool call, had the client stayed.
            await trio.sleep(0.5)
    assert turn.cancelled_caught
    assert text_of(outputs) == "Goodbye."
    assert ran == []
    assert server.requests[0].completed_at is None
    assert len(server.chat_requests()) == 1
    # The server saw the client close after the cancel and before the tool call it would have
    # streamed 0.3 s later (how soon is a benchmark figure: bargein bench openai).
    assert closed >= cancelled_at[0]


async def test_a_tool_from_a_cancelled_generation_never_starts(nursery: trio.Nursery) -> None:
    # Two tool calls in one round; the first cancels the turn (as a barge-in landing while it
    # runs would) and returns without a checkpoint. The second must never start.
    reply = ChatReply(tool_calls=(ToolCall("first"), ToolCall("second")))
    server = await start(nursery, ServerConfig(chat=[reply, "Done."]))
    ran: list[str] = []
    turn = trio.CancelScope()

    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m") as planner:

            @planner.tool()
            async def first() -> str:
                ran.append("first")
                turn.cancel()
                return "ok"

            @planner.tool()
            async def second() -> str:
                ran.append("second")
                return "ok"

            outputs, _ = await collect(planner, request(), turn=turn)
    assert turn.cancelled_caught
    assert ran == ["first"]
    assert statuses(outputs) == [("tool_started", "first")]
    assert len(server.chat_requests()) == 1


async def test_tool_runs_with_status_events_and_the_stream_continues(
    nursery: trio.Nursery,
) -> None:
    script = [
        ChatReply("Let me see.", tool_calls=(ToolCall("get_weather", {"city": "Paris"}),)),
        ChatReply("It is sunny in Paris."),
    ]
    server = await start(nursery, ServerConfig(chat=script))
    calls: list[dict[str, Any]] = []

    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m") as planner:

            async def get_weather(city: str, unit: str = "celsius") -> dict[str, Any]:
                """Current weather for a city."""
                calls.append({"city": city, "unit": unit})
                return {"sky": "sunny", "temp": 21}

            planner.tool(get_weather, status="Checking the weather…")
            outputs, _ = await collect(planner, request())

    assert calls == [{"city": "Paris", "unit": "celsius"}]
    assert text_of(outputs) == "Let me see.It is sunny in Paris."
    kinds = [(o.kind, o.text, o.tool) for o in outputs if isinstance(o, Status)]
    assert kinds == [
        ("tool_started", "Checking the weather…", "get_weather"),
        ("tool_finished", "done", "get_weather"),
    ]
    # Status events sit between the two rounds' text.
    order = ["S" if isinstance(o, Status) else "T" for o in outputs]
    assert order == ["T", "T", "T", "S", "S"] + ["T"] * 5

    first, second = (r.json for r in server.chat_requests())
    assert first["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Current weather for a city.",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    assert first["stream"] is True
    assert second["messages"][-2:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_0_0",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0_0", "content": '{"sky": "sunny", "temp": 21}'},
    ]


async def test_non_interruptible_tool_completes_and_its_result_is_kept(
    nursery: trio.Nursery,
) -> None:
    script = [ChatReply(tool_calls=(ToolCall("book", {"slot": "9am"}),)), "Booked."]
    server = await start(nursery, ServerConfig(chat=script))
    finished = trio.Event()
    kept: list[Any] = []

    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(
            base_url=server.url, model="m", on_tool_result=kept.append
        ) as planner:

            @planner.tool(interruptible=False, status="Booking…")
            async def book(slot: str) -> str:
                await trio.sleep(0.2)  # the barge-in lands while this runs
                finished.set()
                return f"booked {slot}"

            def barge_in_on_tool(item: PlanOutput, turn: trio.CancelScope) -> None:
                if isinstance(item, Status) and item.kind == "tool_started":
                    turn.cancel()

            _, turn = await collect(planner, request(), barge_in_on_tool)
    assert turn.cancelled_caught
    assert finished.is_set()
    assert [(r.name, r.output, r.ok, r.turn) for r in kept] == [("book", "booked 9am", True, 1)]
    assert list(planner.tool_results) == kept
    assert len(server.chat_requests()) == 1  # the cancelled generation does not go on


async def test_interruptible_tool_is_cancelled_by_barge_in(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig(chat=[ChatReply(tool_calls=(ToolCall("slow"),))]))
    outcome: list[str] = []

    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m") as planner:

            @planner.tool()
            async def slow() -> str:
                try:
                    await trio.sleep_forever()
                finally:
                    outcome.append("cancelled")
                return "never"

            def barge_in_on_tool(item: PlanOutput, turn: trio.CancelScope) -> None:
                if isinstance(item, Status) and item.kind == "tool_started":
                    turn.cancel()

            _, turn = await collect(planner, request(), barge_in_on_tool)
    assert turn.cancelled_caught
    assert outcome == ["cancelled"]
    assert list(planner.tool_results) == []


async def test_non_interruptible_tool_is_bounded(nursery: trio.Nursery) -> None:
    script = [ChatReply(tool_calls=(ToolCall("stuck"),)), "Sorry, that failed."]
    server = await start(nursery, ServerConfig(chat=script))
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m") as planner:

            @planner.tool(interruptible=False, timeout=0.1)
            async def stuck() -> str:
                await trio.sleep_forever()
                return "never"

            outputs, _ = await collect(planner, request())
    assert text_of(outputs) == "Sorry, that failed."
    tool_message = server.chat_requests()[1].messages[-1]
    assert tool_message["role"] == "tool"
    assert "did not finish within 0.1 s" in tool_message["content"]
    assert [r.ok for r in planner.tool_results] == [False]


async def test_tool_failures_are_reported_to_the_model(nursery: trio.Nursery) -> None:
    script = [
        ChatReply(
            tool_calls=(
                ToolCall("broken", {}),
                ToolCall("missing", {}),
                ToolCall("broken", "{not json"),
            )
        ),
        "Something went wrong.",
    ]
    server = await start(nursery, ServerConfig(chat=script))
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m") as planner:

            @planner.tool()
            async def broken() -> str:
                raise RuntimeError("database down")

            outputs, _ = await collect(planner, request())
    assert text_of(outputs) == "Something went wrong."
    finished = [o.text for o in outputs if isinstance(o, Status) and o.kind == "tool_finished"]
    assert finished == ['failed: {"error": "RuntimeError: database down"}']
    results = [m["content"] for m in server.chat_requests()[1].messages if m["role"] == "tool"]
    assert results == [
        '{"error": "RuntimeError: database down"}',
        '{"error": "there is no tool named \'missing\'"}',
        '{"error": "arguments must be a JSON object, got \'{not json\'"}',
    ]


async def test_tool_rounds_are_bounded(nursery: trio.Nursery) -> None:
    looping = ChatReply(tool_calls=(ToolCall("again"),))
    server = await start(nursery, ServerConfig(default_chat=looping))
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m", max_tool_rounds=2) as planner:

            @planner.tool()
            async def again() -> str:
                return "ok"

            with pytest.raises(PlannerError, match="kept calling tools"):
                await collect(planner, request())
    bodies = [r.json for r in server.chat_requests()]
    assert len(bodies) == 3
    assert [b.get("tool_choice") for b in bodies] == [None, None, "none"]


async def test_request_messages_are_exactly_the_heard_history(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig(chat=["Sure."]))
    history = (
        ChatMessage("system", "The user is called Ada."),
        ChatMessage("user", "Tell me about trio."),
        ChatMessage("assistant", "Trio is a library for", interrupted=True),
        ChatMessage("user", "Stop. What's the time?"),
        ChatMessage("assistant", "", interrupted=True),
        ChatMessage("user", "Hello?"),
    )
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(
            base_url=server.url, model="small", temperature=0.3, max_tokens=64
        ) as planner:
            outputs, _ = await collect(planner, request(history))
    assert text_of(outputs) == "Sure."
    body = server.requests[0].json
    assert body["messages"] == [
        {"role": "system", "content": SPEECH_SYSTEM_PROMPT},
        {"role": "system", "content": "The user is called Ada."},
        {"role": "user", "content": "Tell me about trio."},
        {"role": "assistant", "content": f"Trio is a library for {INTERRUPTED_MARKER}"},
        {"role": "user", "content": "Stop. What's the time?"},
        {"role": "assistant", "content": INTERRUPTED_MARKER},
        {"role": "user", "content": "Hello?"},
    ]
    assert (body["model"], body["temperature"], body["max_tokens"]) == ("small", 0.3, 64)
    assert body["stream_options"] == {"include_usage": True}
    assert "tools" not in body


# -- faults ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        ChatReply("unused", status=500),
        ChatReply("unused", status=503),
        ChatReply("unused", status=429),
        ChatReply("unused", fault="drop_before_headers"),
        ChatReply("unused", fault="stall_before_headers"),
        ChatReply("unused", fault="stall_before_first_token"),
    ],
    ids=["500", "503", "429", "drop", "stall-before-headers", "stall-before-first-token"],
)
async def test_fault_before_first_token_fails_over(nursery: trio.Nursery, fault: ChatReply) -> None:
    bad = await start(nursery, ServerConfig(chat=[fault]))
    good = await start(nursery, ServerConfig(chat=["Hello from the backup."]))
    endpoints = [Endpoint(bad.url, "primary"), Endpoint(good.url, "backup")]
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(endpoints=endpoints, first_token_timeout=0.3) as planner:
            outputs, _ = await collect(planner, request())
    assert text_of(outputs) == "Hello from the backup."
    infos = [o.text for o in outputs if isinstance(o, Status)]
    assert len(infos) == 1 and infos[0].startswith(f"failover to 127.0.0.1:{good.port}/backup")
    assert isinstance(outputs[0], Status)  # announced before any text
    assert good.requests[0].json["model"] == "backup"
    assert good.requests[0].messages == bad.requests[0].messages
    if fault.fault and fault.fault.startswith("stall"):
        # The stalled stream was closed, not left open.
        with trio.fail_after(HANG_GUARD):
            await bad.wait_closed(0)


async def test_connection_refused_fails_over(nursery: trio.Nursery) -> None:
    good = await start(nursery, ServerConfig(chat=["Backup here."]))
    endpoints = [Endpoint(refused_url(), "primary"), Endpoint(good.url, "backup")]
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(endpoints=endpoints) as planner:
            outputs, _ = await collect(planner, request())
    assert text_of(outputs) == "Backup here."
    status = outputs[0]
    assert isinstance(status, Status) and status.kind == "info"
    assert "connection failed" in status.text


async def test_a_failed_endpoint_is_skipped_for_the_cooldown(nursery: trio.Nursery) -> None:
    bad = await start(nursery, ServerConfig(chat=[ChatReply(status=500)], default_chat=None))
    good = await start(nursery, ServerConfig(chat=["One.", "Two."]))
    endpoints = [Endpoint(bad.url, "a"), Endpoint(good.url, "b")]
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(endpoints=endpoints) as planner:
            first, _ = await collect(planner, request())
            second, _ = await collect(planner, request(turn=2))
    assert (text_of(first), text_of(second)) == ("One.", "Two.")
    assert len(bad.requests) == 1  # not asked again during the cooldown
    assert statuses(second) == []


@pytest.mark.parametrize(
    "fault",
    [
        ChatReply("Partly said. Unheard.", fault="drop_mid_stream", fault_after_tokens=2),
        ChatReply("Partly said. Unheard.", fault="stall_after_first_token", fault_after_tokens=2),
    ],
    ids=["drop-mid-stream", "stall-after-first-token"],
)
async def test_fault_after_first_token_raises_planner_error(
    nursery: trio.Nursery, fault: ChatReply
) -> None:
    bad = await start(nursery, ServerConfig(chat=[fault]))
    backup = await start(nursery, ServerConfig(chat=["Should not be asked."]))
    endpoints = [Endpoint(bad.url, "primary"), Endpoint(backup.url, "backup")]
    outputs: list[PlanOutput] = []
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(endpoints=endpoints, stall_timeout=0.3) as planner:
            with pytest.raises(PlannerError, match=r"after the first token|stalled") as info:
                await collect(planner, request(), lambda item, _: outputs.append(item))
    assert text_of(outputs) == "Partly said."  # streamed before the fault, kept by the caller
    assert backup.requests == []  # never restarted elsewhere
    assert f"127.0.0.1:{bad.port}/primary" in str(info.value)


async def test_client_errors_do_not_fail_over(nursery: trio.Nursery) -> None:
    bad = await start(nursery, ServerConfig(chat=[ChatReply(status=401)]))
    backup = await start(nursery, ServerConfig(chat=["unused"]))
    endpoints = [Endpoint(bad.url, "primary"), Endpoint(backup.url, "backup")]
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(endpoints=endpoints) as planner:
            with pytest.raises(PlannerError, match=r"HTTP 401.*API key"):
                await collect(planner, request())
    assert backup.requests == []


async def test_all_endpoints_failing_raises_planner_error(nursery: trio.Nursery) -> None:
    bad = await start(nursery, ServerConfig(chat=[ChatReply(status=502)]))
    endpoints = [Endpoint(bad.url, "a"), Endpoint(refused_url(), "b")]
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(endpoints=endpoints) as planner:
            with pytest.raises(
                PlannerError,
                match=r"no planner endpoint answered.*HTTP 502.*"
                r"connection failed",
            ):
                await collect(planner, request())


async def test_slow_consumer_is_not_a_stall(nursery: trio.Nursery) -> None:
    # Backpressure from `out` (TTS running behind) must not count against the timeouts.
    server = await start(nursery, ServerConfig(chat=["A B C D."]))
    outputs: list[PlanOutput] = []
    send, receive = trio.open_memory_channel[PlanOutput](0)

    async def slow_consumer() -> None:
        async for item in receive:
            await trio.sleep(0.15)
            outputs.append(item)

    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(
            base_url=server.url, model="m", first_token_timeout=0.1, stall_timeout=0.1
        ) as planner:
            async with trio.open_nursery() as inner:
                inner.start_soon(slow_consumer)
                async with send:
                    await planner.respond(request(), send)
    assert text_of(outputs) == "A B C D."


async def test_closing_leaves_no_connection_open(nursery: trio.Nursery) -> None:
    server = await start(nursery, ServerConfig(chat=["Hi.", "Again."]))
    with trio.fail_after(HANG_GUARD):
        async with OpenAIPlanner(base_url=server.url, model="m") as planner:
            await collect(planner, request())
            await collect(planner, request())
        await server.wait_idle()
    assert server.open_connections == 0


# ------------------------------------------------------- malformed upstream chunks (issue 16)

GOOD_CHUNK = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hello"}}]}


def _frame(payload: object) -> bytes:
    return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode())


async def serve_raw_sse(
    scripts: list[list[bytes]], task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """A minimal chat-completions upstream that answers request i with the SSE frames of
    ``scripts[i]`` (then [DONE]); what a buggy or hostile endpoint could send."""
    served = 0

    async def handle(stream: trio.SocketStream) -> None:
        nonlocal served
        data = b""
        while b"\r\n\r\n" not in data:
            data += await stream.receive_some(65536)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
        while len(body) < length:
            body += await stream.receive_some(65536)
        frames = scripts[min(served, len(scripts) - 1)]
        served += 1
        out = b"".join(frame + b"\n\n" for frame in [*frames, b"data: [DONE]"])
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n"
            b"content-length: " + str(len(out)).encode() + b"\r\n\r\n" + out
        )
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    task_status.started(f"http://127.0.0.1:{port}/v1")
    await trio.serve_listeners(handle, listeners)


MALFORMED = {
    "content-number": (_frame({"choices": [{"index": 0, "delta": {"content": 5}}]}), "content"),
    "content-object": (_frame({"choices": [{"index": 0, "delta": {"content": {}}}]}), "content"),
    "choices-string": (_frame({"choices": "nope"}), "choices"),
    "no-choices": (_frame({"id": "x"}), "choices"),
    "tool-calls-object": (
        _frame({"choices": [{"index": 0, "delta": {"tool_calls": {"a": 1}}}]}),
        "tool_calls",
    ),
    "tool-call-index": (
        _frame({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": "first"}]}}]}),
        "index",
    ),
    "tool-call-huge-index": (
        _frame({"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 10**9}]}}]}),
        "index",
    ),
    "tool-arguments": (
        _frame(
            {
                "choices": [
                    {
                        "index": 0,
                        "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 7}}]},
                    }
                ]
            }
        ),
        "arguments",
    ),
    "not-json": (b"data: {nope", "undecodable"),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
async def test_a_malformed_chunk_is_a_planner_error_naming_the_field_with_a_logged_traceback(
    nursery: trio.Nursery, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    frame, field = MALFORMED[case]
    url = await nursery.start(serve_raw_sse, [[_frame(GOOD_CHUNK), frame]])
    with trio.fail_after(HANG_GUARD), caplog.at_level(logging.ERROR):
        async with OpenAIPlanner(base_url=url, model="m") as planner:
            with pytest.raises(PlannerError, match=field) as info:
                await collect(planner, request())
    assert "127.0.0.1" in str(info.value)
    (record,) = [r for r in caplog.records if "chunk from planner endpoint" in r.getMessage()]
    assert record.exc_info is not None  # the traceback is in the log


async def test_after_a_malformed_chunk_the_session_speaks_again(nursery: trio.Nursery) -> None:
    # The turn fails with an error event (not a dead floor actor), and the next turn is answered.
    bad = _frame({"choices": [{"index": 0, "delta": {"content": 5}}]})
    url = await nursery.start(serve_raw_sse, [[bad], [_frame(GOOD_CHUNK), _frame({"choices": []})]])
    planner = OpenAIPlanner(base_url=url, model="m")
    engines = Engines(stt=ScriptedStt(), planner=planner, tts=ScriptedTts(ms_per_char=1.0))
    seen: list[Event] = []
    failed, answered = trio.Event(), trio.Event()

    def on_event(event: Event) -> None:
        seen.append(event)
        if event.type == EventType.ERROR:
            failed.set()
        if event.type == EventType.TURN_COMPLETED and event.turn == 2:
            answered.set()

    with trio.fail_after(HANG_GUARD):
        async with open_session(SessionConfig(), engines, MemoryTransport()) as session:
            session.bus.add_listener(on_event)
            session.push_text("First question.")
            await failed.wait()
            session.push_text("Second question.")
            await answered.wait()
            messages = session.messages
        await planner.aclose()
    errors = [e for e in seen if e.type == EventType.ERROR]
    assert "malformed chunk" in str(errors[0].data)
    assert not any(e.type == EventType.SESSION_ENDED and "failed" in str(e.data) for e in seen)
    assert messages[-1].role == "assistant" and messages[-1].content.startswith("Hello")
