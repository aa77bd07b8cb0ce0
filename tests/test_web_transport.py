"""The WebSocket transport without a server: its outbound queue, the event mapping, and the
connection handler driven through a fake socket under trio's mock clock (scripted engines)."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from bargein.engines.base import Engines
from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame, WordMark
from bargein.session import SessionConfig
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.transports.mapping import event_to_message, words_message
from bargein.transports.outbound import OutboundQueue
from bargein.transports.protocol import (
    AssistantText,
    AudioOut,
    Clear,
    ClientProtocol,
    ErrorMessage,
    Interrupt,
    OptionValue,
    ServerMessage,
    ServerProtocol,
    SessionEnded,
    SessionStart,
    SessionStarted,
    SpeechStopped,
    StatusMessage,
    Text,
    TranscriptFinal,
    TurnEnded,
    TurnMark,
    TurnStarted,
    Words,
    WordSpan,
)
from bargein.transports.websocket import (
    ConnectionLimits,
    SessionServer,
    WebSocketTransport,
    default_session_config,
)

# --------------------------------------------------------------------------- outbound queue


async def test_queue_drops_oldest_audio_never_control() -> None:
    queue = OutboundQueue(max_audio=2, max_control=3)
    assert queue.put_audio(b"a1", turn=1)
    assert queue.put_control("c1")
    assert queue.put_audio(b"a2", turn=1)
    assert not queue.put_audio(b"a3", turn=2)  # a1 goes
    assert queue.stats.dropped_audio == 1
    assert queue.put_control("urgent", urgent=True)
    assert [await queue.get() for _ in range(4)] == ["urgent", "c1", b"a2", b"a3"]
    assert (queue.stats.queued_audio, queue.stats.queued_control) == (0, 0)


async def test_queue_flushes_a_cleared_turn() -> None:
    queue = OutboundQueue(max_audio=10, max_control=10)
    for frame, turn in ((b"1a", 1), (b"2a", 2), (b"1b", 1)):
        queue.put_audio(frame, turn)
    queue.put_control("event")
    assert queue.flush_turn(1) == 2
    assert queue.stats.flushed_audio == 2
    queue.close()
    assert [await queue.get(), await queue.get()] == [b"2a", "event"]
    with pytest.raises(trio.EndOfChannel):
        await queue.get()
    assert not queue.put_control("late") and queue.stats.dropped_control == 1


async def test_queue_fails_when_control_backlog_fills() -> None:
    queue = OutboundQueue(max_audio=10, max_control=2)
    assert queue.put_control("1") and queue.put_control("2")
    assert not queue.failed.is_set()
    assert not queue.put_control("3")
    assert queue.failed.is_set()
    assert not queue.put_audio(b"x", 1)
    with pytest.raises(ValueError):
        OutboundQueue(max_audio=0, max_control=1)


# --------------------------------------------------------------------------- mapping


def event(kind: EventType, turn: int | None = None, **data: object) -> Event:
    return Event(kind, 1.25, "s", 7, turn, data)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (event(EventType.SPEECH_STOPPED, offset=1.0), SpeechStopped(1.25)),
        (event(EventType.SPEECH_STOPPED, speech_end=0.77), SpeechStopped(1.25, speech_end=0.77)),
        (
            event(EventType.AUDIO_PLAYED_FIRST, 3, played_at=1.1),
            TurnMark(3, "audio_played_first", 1.1),
        ),
        # Lone surrogates from an engine become U+FFFD: the text still reaches the client.
        (event(EventType.ASSISTANT_TEXT, 3, delta="a\ud800b"), AssistantText(3, "a\ufffdb", 1.25)),
        (event(EventType.TURN_STARTED, 3, user_text="\udfff"), TurnStarted(3, "\ufffd", 1.25)),
        (
            event(EventType.TRANSCRIPT_FINAL, utterance=2, text="hi"),
            TranscriptFinal("hi", 2, 1.25),
        ),
        (event(EventType.TURN_STARTED, 3, user_text="hi"), TurnStarted(3, "hi", 1.25)),
        (event(EventType.LLM_FIRST_TOKEN, 3), TurnMark(3, "llm_first_token", 1.25)),
        (event(EventType.BARGE_IN, 3, reason="speech"), TurnMark(3, "barge_in", 1.25)),
        (
            event(EventType.TURN_CANCELLED, 3, heard_text="It is", heard_ms=410.4),
            TurnEnded(3, "interrupted", "It is", 410, 1.25),
        ),
        (
            event(EventType.TURN_COMPLETED, 3, heard_text="Done.", heard_ms=99.6),
            TurnEnded(3, "completed", "Done.", 100, 1.25),
        ),
        (
            event(EventType.TOOL_STARTED, 3, text="Looking", tool="search"),
            StatusMessage("tool_started", "Looking", 3, "search", 1.25),
        ),
        (
            event(EventType.ERROR, 3, source="planner", error="E", message="m", fatal=False),
            ErrorMessage("engine_error", "planner: E: m", False),
        ),
        (
            event(EventType.ERROR, source="stt", error="E", message="m", fatal=True),
            ErrorMessage("session_failed", "stt: E: m", True),
        ),
        (event(EventType.SESSION_ENDED, reason="closed"), SessionEnded("closed", 1.25)),
        (event(EventType.SESSION_STARTED, input_rate=16000), None),
        (event(EventType.INPUT_REJECTED, code="bad_json"), None),
    ],
)
def test_event_mapping(source: Event, expected: ServerMessage | None) -> None:
    assert event_to_message(source) == expected


def test_words_of_a_frame() -> None:
    frame = OutFrame(2, np.zeros(10, np.int16), 480, (WordMark("hi", 480, 900),))
    assert words_message(frame) == Words(2, (WordSpan("hi", 480, 900),))
    assert words_message(OutFrame(2, np.zeros(10, np.int16), 0)) is None


# --------------------------------------------------------------------------- the handler


class FakeWebSocket:
    """quart's websocket surface; the test plays the client and can stop reading."""

    def __init__(self) -> None:
        self.inbox_send, self.inbox = trio.open_memory_channel[str | bytes](100)
        self.sent: list[str | bytes] = []
        self.reading = trio.Event()
        self.reading.set()
        self.new_frame = trio.Event()
        self.closed_with: tuple[int, str] | None = None
        self.codec = ClientProtocol()

    async def accept(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        return await self.inbox.receive()

    async def send(self, data: str | bytes) -> None:
        await self.reading.wait()  # a peer that stopped reading: the write never completes
        self.sent.append(data)
        self.new_frame.set()
        self.new_frame = trio.Event()

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_with = (code, reason)
        await trio.lowlevel.checkpoint()

    async def client_send(self, message: object) -> None:
        await self.inbox_send.send(self.codec.send(message))  # type: ignore[arg-type]

    def received(self) -> list[ServerMessage]:
        return [_decode(f) for f in self.sent]

    async def wait_for(self, kind: type) -> None:
        while not any(isinstance(m, kind) for m in self.received()):
            await self.new_frame.wait()


def _decode(frame: str | bytes) -> ServerMessage:
    codec = ClientProtocol()
    codec.started = True  # frames are decoded one by one here, out of their stream
    return codec.receive(frame)


def scripted(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(
        stt=ScriptedStt(),
        planner=ScriptedPlanner(["one two three four five six seven eight nine ten " * 20]),
        tts=ScriptedTts(16000),
    )


def inline_config(start: SessionStart, session_id: str) -> SessionConfig:
    return dataclasses.replace(default_session_config(start, session_id), compute="inline")


@pytest.mark.parametrize(
    ("limits", "dropped_audio"),
    [
        (ConnectionLimits(stall_timeout=3.0, max_audio_frames=20), True),
        (ConnectionLimits(stall_timeout=1e6, max_control_frames=4, max_audio_frames=10**6), False),
    ],
)
async def test_a_client_that_stops_reading_is_dropped_and_its_session_ends(
    autojump_clock: trio.testing.MockClock, limits: ConnectionLimits, dropped_audio: bool
) -> None:
    server = SessionServer(scripted, limits=limits, session_config=inline_config)
    ws = FakeWebSocket()
    with trio.fail_after(600):  # virtual seconds
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle, ws)
            await ws.client_send(SessionStart(16000))
            await ws.client_send(Text("talk for a long time"))
            await ws.wait_for(AudioOut)
            ws.reading = trio.Event()  # the client stops reading
        # `handle` returned: the connection is closed and its session is gone.
    assert ws.closed_with == (1008, "slow_consumer")
    assert server.stats.slow_consumers == 1
    assert not server.sessions
    assert (server.stats.dropped_audio_frames > 0) is dropped_audio


async def test_a_vanished_client_ends_its_session(autojump_clock: trio.testing.MockClock) -> None:
    server = SessionServer(scripted, session_config=inline_config)
    ws = FakeWebSocket()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle, ws)
            await ws.client_send(SessionStart(16000))
            await ws.client_send(Text("hello"))
            await ws.wait_for(AudioOut)
            # What quart does when the peer disconnects: cancel the handler.
            nursery.cancel_scope.cancel()
        await server.wait_idle()
    assert not server.sessions


async def test_shutdown_ends_sessions_with_an_error(autojump_clock: trio.testing.MockClock) -> None:
    server = SessionServer(scripted, session_config=inline_config)
    ws = FakeWebSocket()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle, ws)
            await ws.client_send(SessionStart(16000))
            await ws.client_send(Text("hello"))
            await ws.wait_for(TurnStarted)
            server.shutdown()
    errors = [m for m in ws.received() if isinstance(m, ErrorMessage)]
    assert [(e.code, e.fatal) for e in errors] == [("shutting_down", True)]
    assert ws.closed_with == (1001, "shutting_down")


async def test_handshake_timeout(autojump_clock: trio.testing.MockClock) -> None:
    server = SessionServer(scripted, limits=ConnectionLimits(handshake_timeout=5))
    ws = FakeWebSocket()
    with trio.fail_after(600):
        await ws.inbox_send.send('{"type":"text","v":1,"text":"hi"}')
        await server.handle(ws)
    codes = [json.loads(f)["code"] for f in ws.sent if isinstance(f, str)]
    assert codes == ["not_started", "handshake_timeout"]
    assert server.stats.handshake_timeouts == 1
    assert server.stats.rejections == {"not_started": 1}
    assert ws.closed_with == (1008, "handshake_timeout")


def very_long(_: Mapping[str, OptionValue]) -> Engines:
    # Far longer than the test: the turn is surely still playing when the interrupt comes.
    return Engines(ScriptedStt(), ScriptedPlanner(["la " * 3000]), ScriptedTts(16000))


async def test_interrupt_naming_another_turn_is_a_no_op_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SessionServer(very_long, session_config=inline_config)
    ws = FakeWebSocket()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle, ws)
            await ws.client_send(SessionStart(16000))
            await ws.client_send(Text("talk for a long time"))
            await ws.wait_for(AudioOut)
            (started,) = [m for m in ws.received() if isinstance(m, TurnStarted)]
            await ws.client_send(Interrupt(turn=started.turn + 1))  # not the current turn
            await trio.sleep(1)
            nursery.cancel_scope.cancel()
    assert not [m for m in ws.received() if isinstance(m, Clear | TurnEnded)]
    assert server.stats.interrupts_stale == 1


async def test_clear_carries_the_session_time() -> None:
    protocol = ServerProtocol()
    protocol.receive('{"type":"session.start","v":1,"sample_rate":16000}')
    transport = WebSocketTransport(protocol, ConnectionLimits())
    transport.send_message(SessionStarted("s1", 16000, 16000))
    transport.clock = lambda: 2.5
    await transport.send_clear(3)
    transport.close()
    frames = [await transport.queue.get() for _ in range(len(transport.queue))]
    assert _decode(frames[0]) == Clear(3, 2.5)


class UnencodableWebSocket(FakeWebSocket):
    """What wsproto does with a text frame holding a lone surrogate."""

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str) and '"turn.started"' in data:
            raise UnicodeEncodeError("utf-8", data, 0, 1, "surrogates not allowed")
        await super().send(data)


async def test_an_unencodable_frame_is_lost_not_the_session(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = SessionServer(scripted, session_config=inline_config)
    ws = UnencodableWebSocket()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(server.handle, ws)
            await ws.client_send(SessionStart(16000))
            await ws.client_send(Text("hello"))
            await ws.wait_for(AudioOut)  # the turn goes on without its turn.started frame
            nursery.cancel_scope.cancel()
    assert not [m for m in ws.received() if isinstance(m, TurnStarted)]
    assert server.stats.unsendable == {"unencodable": 1}


async def test_queued_reply_text_is_coalesced_and_a_cleared_turn_loses_it() -> None:
    protocol = ServerProtocol()
    protocol.receive('{"type":"session.start","v":1,"sample_rate":16000}')
    transport = WebSocketTransport(protocol, ConnectionLimits())
    transport.send_message(SessionStarted("s1", 16000, 16000))
    for i, word in enumerate(["Once ", "upon ", "a ", "time."]):
        transport.send_message(AssistantText(1, word, t=1.0 + i))
    transport.send_message(TurnMark(1, "tts_first_audio", 2.0))
    transport.send_message(AssistantText(1, "More.", t=3.0))  # after another frame: not merged
    for word in ["Doomed ", "text."]:
        transport.send_message(AssistantText(2, word, t=4.0))
    await transport.send_clear(2)  # turn 2 cut: its queued text goes with its audio
    transport.close()
    frames = [_decode(await transport.queue.get()) for _ in range(len(transport.queue))]
    assert frames == [
        Clear(2, None),
        SessionStarted("s1", 16000, 16000),
        AssistantText(1, "Once upon a time.", 1.0),
        TurnMark(1, "tts_first_audio", 2.0),
        AssistantText(1, "More.", 3.0),
    ]
    assert transport.stats.coalesced_text == 4 and transport.stats.flushed_text == 1
    assert transport.stats.queued_control == 0


class BrokenStt(ScriptedStt):
    def recognizer(self) -> Any:
        raise RuntimeError("no recognizer today")


async def test_a_session_that_fails_while_starting_is_refused_not_a_crash(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def broken(_: Mapping[str, OptionValue]) -> Engines:
        return Engines(BrokenStt(), ScriptedPlanner(["x"]), ScriptedTts(16000))

    server = SessionServer(broken, session_config=inline_config)
    ws = FakeWebSocket()
    with trio.fail_after(600):
        await ws.client_send(SessionStart(16000))
        await server.handle(ws)  # returns: no exception escapes the handler
    errors = [m for m in ws.received() if isinstance(m, ErrorMessage)]
    assert [(e.code, e.fatal) for e in errors] == [("session_failed", True)]
    assert ws.closed_with == (1011, "session_failed")
    assert not server.sessions
