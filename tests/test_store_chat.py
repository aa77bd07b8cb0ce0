"""A conversation moving back and forth between workers, and a chat stream followed on a worker
that does not produce it (docs/deploy.md), in one process:
two real servers on 127.0.0.1 sharing one `MemoryStore` (the same semantics as Redis, which
tests/test_scale_out.py covers with real processes). A reader elsewhere keeps the producer from
cancelling the stream as an orphan; a hole in what the store holds, a position past its end and
a producer that stopped without a final event are each said plainly, never papered over."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import trio

from bargein.engines.base import Engines
from bargein.store import MemoryStore
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import GatedPlanner, connect, http, running
from bargein.transports.app import DemoServer
from bargein.transports.chat import ChatConfig
from bargein.transports.protocol import (
    HistoryEntry,
    OptionValue,
    SessionStart,
    SessionStarted,
    Text,
    TurnEnded,
)
from bargein.transports.sse import Record, SseEvent

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound
USER = {"messages": [{"role": "user", "content": "count for me"}]}
QUICK = ChatConfig(heartbeat_interval=0.1, orphan_timeout=0.3, catch_up_timeout=0.5)


@asynccontextmanager
async def pair(planner: object, config: ChatConfig) -> AsyncIterator[tuple[int, int, MemoryStore]]:
    """Workers A (whose planner is `planner`) and B, sharing one store; their ports."""
    store_a = MemoryStore()
    store_b = MemoryStore(shared=store_a)
    a = DemoServer(chat_planner=planner, chat_config=config, store=store_a)  # type: ignore[arg-type]
    b = DemoServer(chat_planner=ScriptedPlanner(), chat_config=config, store=store_b)
    async with running(a) as port_a, running(b) as port_b:
        yield port_a, port_b, store_b


async def test_a_reader_on_another_worker_keeps_the_stream_from_being_an_orphan() -> None:
    planner = GatedPlanner([" one", " two"], [" three"])
    with trio.fail_after(HANG_GUARD):
        async with pair(planner, QUICK) as (port_a, port_b, _):
            first: list[SseEvent] = []
            async with http(port_a) as client:
                await client.request("POST", "/api/chat/stream", USER)
                while len(first) < 3:  # status, " one", " two"
                    item = await client.item()
                    if isinstance(item, SseEvent):
                        first.append(item)
            async with http(port_b) as client:
                await client.request(
                    "GET", "/api/chat/stream", headers={"Last-Event-ID": first[-1].id or ""}
                )
                # Far longer than A's orphan timeout with no reader on A.
                await trio.sleep(10 * QUICK.orphan_timeout)
                planner.gate.set()
                rest = await client.events()
    assert not planner.cancelled.is_set()
    assert [json.loads(e.data)["text"] for e in rest if e.event == "token"] == [" three"]
    assert rest[-1].event == "done"


async def test_holes_positions_past_the_end_and_a_lapsed_producer_are_said_plainly() -> None:
    with trio.fail_after(HANG_GUARD):
        async with pair(ScriptedPlanner(), QUICK) as (_, port_b, store):
            # Written as another worker would: 1, 2, then 4 (3 never reached the store).
            store.hold_stream("gappy", 30.0)
            for seq in (1, 2, 4):
                store.append_record(Record("gappy", seq, "token", '{"text":"x"}'), final=False)
            async with http(port_b) as client:
                response = await client.request(
                    "GET", "/api/chat/stream", headers={"Last-Event-ID": "gappy:1"}
                )
                gappy = await client.events()
            async with http(port_b) as client:
                ahead = await client.request(
                    "GET", "/api/chat/stream", headers={"Last-Event-ID": "gappy:9"}
                )
                await client.item()
                ahead_body = json.loads(client.body)
            # A producer that stops holding its stream without a final event.
            store.hold_stream("lapsed", 0.2)
            store.append_record(Record("lapsed", 1, "token", '{"text":"y"}'), final=False)
            async with http(port_b) as client:
                await client.request(
                    "GET", "/api/chat/stream", headers={"Last-Event-ID": "lapsed:0"}
                )
                lapsed = await client.events()
    assert response.status_code == 200
    assert [(e.event, e.id) for e in gappy] == [("token", "gappy:2"), ("error", "gappy:2")]
    assert gappy[-1].event == "error" and json.loads(gappy[-1].data)["code"] == "replay_gap"
    assert ahead.status_code == 400 and ahead_body["error"]["code"] == "bad_last_event_id"
    assert [e.event for e in lapsed] == ["token", "error"] and lapsed[0].id == "lapsed:1"
    assert lapsed[-1].event == "error" and json.loads(lapsed[-1].data)["code"] == "stream_lost"


async def test_a_position_the_store_has_not_caught_up_with_yet_is_waited_for() -> None:
    """The producing worker's client can be sent events still queued for the store: resuming
    elsewhere right after (tests/test_scale_out.py did, under load) waits for the store."""
    with trio.fail_after(HANG_GUARD):
        async with pair(ScriptedPlanner(), QUICK) as (_, port_b, store):
            store.hold_stream("lagging", 30.0)
            for seq in (1, 2):
                store.append_record(Record("lagging", seq, "token", '{"text":"x"}'), final=False)

            async def store_catches_up() -> None:
                await trio.sleep(QUICK.catch_up_timeout / 4)
                store.append_record(Record("lagging", 3, "token", '{"text":"y"}'), final=False)
                store.append_record(Record("lagging", 4, "token", '{"text":"z"}'), final=False)
                store.append_record(Record("lagging", 5, "done", "{}"), final=True)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(store_catches_up)
                async with http(port_b) as client:
                    response = await client.request(
                        "GET", "/api/chat/stream", headers={"Last-Event-ID": "lagging:3"}
                    )
                    rest = await client.events()
    assert response.status_code == 200
    assert [(e.event, e.id) for e in rest] == [("token", "lagging:4"), ("done", "lagging:5")]


def scripted(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner(["Four.", "Seven.", "Nine."]), ScriptedTts(16000))


async def test_a_conversation_back_on_a_worker_that_had_it_carries_what_the_other_added() -> None:
    store_a = MemoryStore()
    a = DemoServer(scripted, store=store_a)
    b = DemoServer(scripted, store=MemoryStore(shared=store_a))
    with trio.fail_after(HANG_GUARD):
        async with running(a) as port_a, running(b) as port_b:
            async with connect(port_a, SessionStart(16000)) as first:
                await first.send(Text("two plus two"))
                await first.wait_for(lambda m: isinstance(m, TurnEnded))
            await a.sessions.wait_idle()
            (one,) = first.of(SessionStarted)
            again = SessionStart(16000, session_id=one.session_id, resume_secret=one.resume_secret)
            for port, server, text in (
                (port_b, b, "three plus four"),
                (port_a, a, "four plus five"),
            ):
                async with connect(port, again) as client:
                    await client.send(Text(text))
                    await client.wait_for(lambda m: isinstance(m, TurnEnded))
                await server.sessions.wait_idle()
    (back,) = client.of(SessionStarted)
    assert back.resumed
    assert back.history == (
        HistoryEntry("user", "two plus two"),
        HistoryEntry("assistant", "Four."),
        HistoryEntry("user", "three plus four"),
        HistoryEntry("assistant", "Four."),
    )
