"""Resuming a conversation over real sockets (docs/protocol.md, "Resume"): the per-session
secret, a takeover of a still-open session, turn and event numbers that continue, the heard
history and the capabilities in `session.started`. Scripted engines, hypercorn on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Mapping

import trio

from bargein.engines.base import Engines
from bargein.presets import PRESETS
from bargein.runtime.events import Event
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import connect, running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import (
    SUPPORTED_RATES,
    ErrorMessage,
    HistoryEntry,
    Interrupt,
    OptionValue,
    Playback,
    SessionEnded,
    SessionStart,
    SessionStarted,
    Text,
    TurnEnded,
    TurnStarted,
)

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound


def scripted(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner(["Four.", "Seven."]), ScriptedTts(16000))


def long_reply(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner(["la " * 300]), ScriptedTts(16000))


def started_of(messages: list[object]) -> SessionStarted:
    (started,) = [m for m in messages if isinstance(m, SessionStarted)]
    return started


async def test_a_new_session_gets_a_secret_and_the_capabilities() -> None:
    server = DemoServer(scripted)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000)) as client:
            started = started_of(client.messages)
    assert not started.resumed and started.history == ()
    assert started.resume_secret is not None
    assert re.fullmatch(r"[A-Za-z0-9_-]{32,}", started.resume_secret)
    caps = started.capabilities
    assert caps is not None
    assert caps.sample_rates == tuple(sorted(SUPPORTED_RATES))
    assert caps.max_audio_bytes == started.max_audio_bytes == 32000
    assert {"voice", "rate_wpm", "pitch", "policy"} <= set(caps.options)
    assert list(caps.policies) == list(PRESETS)  # every preset (tests/test_presets_wire.py)


async def test_resume_needs_the_secret_and_continues_turns_seq_and_history() -> None:
    server = DemoServer(scripted)
    events: list[Event] = []
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, trio.open_nursery() as nursery:
            subscription = server.hub.subscribe(4096)

            async def record() -> None:
                async for event in subscription:
                    events.append(event)

            nursery.start_soon(record)
            async with connect(port, SessionStart(16000)) as first:
                await first.send(Text("what is two plus two"))
                await first.wait_for(lambda m: isinstance(m, TurnEnded))
            one = started_of(first.messages)
            await server.sessions.wait_idle()

            stolen = SessionStart(16000, session_id=one.session_id)
            wrong = SessionStart(16000, session_id=one.session_id, resume_secret="x" * 43)
            for attempt in (stolen, wrong):
                async with connect(port, attempt) as thief:
                    error = await thief.wait_for(lambda m: isinstance(m, ErrorMessage))
                    assert isinstance(error, ErrorMessage)
                    assert (error.code, error.fatal) == ("bad_resume_secret", False)
                    other = started_of(thief.messages)
                    assert other.session_id != one.session_id and not other.resumed
                    assert other.history == () and "two plus two" not in str(thief.messages)
                await server.sessions.wait_idle()

            again_start = SessionStart(
                16000, session_id=one.session_id, resume_secret=one.resume_secret
            )
            async with connect(port, again_start) as again:
                await again.send(Text("what is three plus four"))
                await again.wait_for(lambda m: isinstance(m, TurnEnded))
            await server.sessions.wait_idle()
            nursery.cancel_scope.cancel()
    two = started_of(again.messages)
    assert two.session_id == one.session_id and two.resumed
    assert two.resume_secret == one.resume_secret  # kept across resumes of the id
    assert two.history == (
        HistoryEntry("user", "what is two plus two"),
        HistoryEntry("assistant", "Four."),
    )
    assert [m.turn for m in first.of(TurnStarted)] == [1]
    assert [m.turn for m in again.of(TurnStarted)] == [2]
    assert server.sessions.stats.resume_refused == {"bad_resume_secret": 2}
    assert server.sessions.stats.sessions_resumed == 1
    # One event stream under one id: sequence numbers continue, never repeat.
    seqs = [e.seq for e in events if e.session == one.session_id]
    assert seqs == list(range(len(seqs)))
    kinds = [e.type.value for e in events if e.session == one.session_id]
    assert kinds.count("session_started") == 2 and kinds.count("turn_started") == 2


async def test_an_unknown_session_starts_a_new_one() -> None:
    server = DemoServer(scripted)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            start = SessionStart(16000, session_id="nosuchsession", resume_secret="s" * 43)
            async with connect(port, start) as client:
                error = await client.wait_for(lambda m: isinstance(m, ErrorMessage))
    assert isinstance(error, ErrorMessage) and error.code == "unknown_session"
    started = started_of(client.messages)
    assert started.session_id != "nosuchsession" and not started.resumed
    assert server.sessions.stats.resume_refused == {"unknown_session": 1}


async def test_a_newer_connection_takes_over_a_still_open_session() -> None:
    server = DemoServer(long_reply, max_sessions=1)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000)) as old:
            await old.send(Text("tell me a long story"))
            await old.wait_for(lambda m: isinstance(m, TurnStarted))
            # Report a second of the reply as played, so part of it was heard.
            await old.wait_for(lambda m: sum(len(a.pcm) for a in old.audio(1)) >= 16000)
            await old.send(Playback(1, 16000))
            # (Interrupted first; a takeover mid-reply: tests/test_turn_session_end.py.)
            await old.send(Interrupt(turn=1))
            await old.wait_for(lambda m: isinstance(m, TurnEnded))
            one = started_of(old.messages)
            start = SessionStart(16000, session_id=one.session_id, resume_secret=one.resume_secret)
            # At the session limit: the takeover frees the slot of the session it ends.
            async with connect(port, start) as new:
                await old.wait_closed()
                new_started = started_of(new.messages)
                await new.send(Text("and then"))
                resumed_turn = await new.wait_for(lambda m: isinstance(m, TurnStarted))
                assert list(server.sessions.sessions) == [one.session_id]
    errors = old.of(ErrorMessage)
    assert [(e.code, e.fatal) for e in errors] == [("session_taken_over", True)]
    assert old.close_code == 4000
    assert not old.of(SessionEnded)  # nothing follows the fatal error
    assert new_started.resumed and new_started.session_id == one.session_id
    assert [h.role for h in new_started.history] == ["user", "assistant"]
    assert new_started.history[0].content == "tell me a long story"
    heard = new_started.history[1]
    assert heard.interrupted and heard.content.startswith("la la")  # cut by the interrupt
    assert len(heard.content) < len("la " * 300) / 2
    assert isinstance(resumed_turn, TurnStarted) and resumed_turn.turn == 2
    assert server.sessions.stats.takeovers == 1
    assert not new.of(ErrorMessage)
