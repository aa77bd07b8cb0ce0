"""A reply still playing when its session ends: the heard part is committed to the history and
the turn ends `turn_cancelled` (reason `session_ended`), whatever ends the session — close,
the end of input, a resuming connection's takeover — so a resumed conversation knows what the
user already heard."""

from __future__ import annotations

from collections.abc import Mapping

import trio
import trio.testing

from bargein.engines.base import Engines
from bargein.runtime.events import EventType
from bargein.runtime.messages import OutFrame
from bargein.session import Session, SessionConfig, open_session
from bargein.store import ConversationRecord, MemoryStore
from bargein.testing.memory import OrderedTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import connect, running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import (
    ErrorMessage,
    HistoryEntry,
    OptionValue,
    Playback,
    SessionStart,
    SessionStarted,
    Text,
    TurnMark,
    Words,
)
from tests.test_turn_truth import assert_turn_truth

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound
LONG = " ".join(["Once upon a time there was a small robot that lived by the sea."] * 6)


class Peer(OrderedTransport):
    """Plays each frame as it arrives and reports what it played every `every_s`; remembers
    the last report it sent, which is all the session can know was heard."""

    def __init__(self, every_s: float = 0.1) -> None:
        super().__init__()
        self.every_s = every_s
        self.session: Session | None = None
        self.first_at: float | None = None
        self.ends: list[int] = []
        self.reported = 0

    async def send_audio(self, frame: OutFrame) -> None:
        if self.first_at is None:
            self.first_at = trio.current_time()
        self.ends.append(frame.end)
        await super().send_audio(frame)

    async def report_forever(self) -> None:
        while True:
            await trio.sleep(self.every_s)
            if self.session is None or self.first_at is None or self.session.ended:
                continue
            played = int((trio.current_time() - self.first_at) * 16000)
            self.reported = min(self.ends[-1], played)
            self.session.report_playback(1, self.reported)

    def heard_words(self, upto: int) -> str:
        """The words of turn 1 whose audio ends within the first `upto` samples."""
        words = [w for _, f in self.turn_frames(1) for w in f.words]
        return " ".join(w.text for w in words if w.end <= upto)


def started_of(messages: list[object]) -> SessionStarted:
    (started,) = [m for m in messages if isinstance(m, SessionStarted)]
    return started


def long_engines() -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner([LONG]), ScriptedTts())


def assistant(session: Session) -> list[tuple[str, bool]]:
    return [(m.content, m.interrupted) for m in session.messages if m.role == "assistant"]


async def test_close_mid_reply_commits_exactly_the_reported_heard_words(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer = Peer()
    async with trio.open_nursery() as reporter:
        reporter.start_soon(peer.report_forever)
        async with open_session(SessionConfig(), long_engines(), peer) as session:
            peer.session = session
            peer.watch(session)
            session.push_text("tell me a story")
            await trio.sleep(6.05)  # mid-reply: ~6 s of ~40 s played
            session.close()
            await session.wait_ended()
        reporter.cancel_scope.cancel()
    heard = peer.heard_words(peer.reported)
    assert heard and LONG.startswith(heard) and len(heard) < len(LONG) / 3
    assert assistant(session) == [(heard, True)]
    (ended,) = peer.of_type(EventType.TURN_CANCELLED)
    assert ended.data["reason"] == "session_ended"
    assert ended.data["heard_text"] == ended.data["committed_text"] == heard
    # It is told before the session's end, and reaches the transport.
    kinds = [e.type for e in peer.events]
    assert kinds.index(EventType.TURN_CANCELLED) < kinds.index(EventType.SESSION_ENDED)
    assert_turn_truth(peer.events, session.messages)


async def test_leaving_the_session_block_mid_reply_without_reports_commits_what_was_sent(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = OrderedTransport()
    async with open_session(SessionConfig(), long_engines(), transport) as session:
        transport.watch(session)
        session.push_text("tell me a story")
        await trio.sleep(4.01)
    sent = transport.turn_frames(1)[-1][1].end
    words = [w for _, f in transport.turn_frames(1) for w in f.words]
    heard = " ".join(w.text for w in words if w.end <= sent)
    assert heard and assistant(session) == [(heard, True)]
    (ended,) = transport.of_type(EventType.TURN_CANCELLED)
    assert ended.data["reason"] == "session_ended" and ended.data["heard_text"] == heard
    assert_turn_truth(transport.events, session.messages)


async def test_a_turn_closed_before_it_spoke_commits_an_empty_interrupted_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = OrderedTransport()
    engines = Engines(ScriptedStt(), ScriptedPlanner([LONG], first_token_ms=500), ScriptedTts())
    async with open_session(SessionConfig(), engines, transport) as session:
        session.push_text("tell me a story")
        await trio.sleep(0.1)  # the planner has not answered yet
    assert [(m.role, m.content, m.interrupted) for m in session.messages] == [
        ("user", "tell me a story", False),
        ("assistant", "", True),
    ]
    (ended,) = transport.of_type(EventType.TURN_CANCELLED)
    assert ended.data["reason"] == "session_ended" and ended.data["sent_ms"] == 0
    assert_turn_truth(transport.events, session.messages)


async def test_the_end_of_input_mid_reply_still_answers_then_ends_with_the_whole_reply(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """End of input is not a cut: the session answers and ends after the reply has played."""
    transport = OrderedTransport()
    engines = Engines(ScriptedStt(), ScriptedPlanner(["Short reply."]), ScriptedTts())
    async with open_session(SessionConfig(), engines, transport) as session:
        session.push_text("hi")
        await trio.sleep(0.1)
        session.end_input()
        assert await session.wait_ended() == "input_ended"
    assert assistant(session) == [("Short reply.", False)]
    assert_turn_truth(transport.events, session.messages)


# -- over a real socket: a resuming connection takes over mid-reply ---------------------------


class RecordingStore(MemoryStore):
    """The memory store, logging every conversation record written (in `log`, in order with
    the server's events, which a hub listener adds)."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, object]] = []

    def save_conversation(self, record: ConversationRecord) -> None:
        self.log.append(("save", record.history))
        super().save_conversation(record)


def long_reply(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner(["la " * 300]), ScriptedTts(16000))


async def test_a_takeover_mid_reply_resumes_with_the_heard_part_in_the_history() -> None:
    store = RecordingStore()
    server = DemoServer(long_reply, max_sessions=1, store=store)
    server.hub.add_listener(lambda e: store.log.append(("event", e.type)))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000)) as old:
            await old.send(Text("tell me a long story"))
            await old.wait_for(lambda m: sum(len(a.pcm) for a in old.audio(1)) >= 16000)
            await old.send(Playback(1, 16000))  # a second of the reply played …
            await old.wait_for(lambda m: isinstance(m, TurnMark) and m.mark == "audio_played_first")
            one = started_of(old.messages)
            start = SessionStart(16000, session_id=one.session_id, resume_secret=one.resume_secret)
            async with connect(port, start) as new:  # … and the reply still plays: taken over
                await old.wait_closed()
                resumed = started_of(new.messages)
    assert [(e.code, e.fatal) for e in old.of(ErrorMessage)] == [("session_taken_over", True)]
    spans = [w for m in old.of(Words) if m.turn == 1 for w in m.words]
    heard = " ".join(w.text for w in spans if w.end <= 16000)
    assert heard.startswith("la la") and len(heard) < 40
    assert resumed.resumed and resumed.history == (
        HistoryEntry("user", "tell me a long story"),
        HistoryEntry("assistant", heard, interrupted=True),
    )
    # The store's record was written at the turn's end, before the old session ended (by the
    # TurnRecorder, not only at the release afterwards): another worker resumes with it too.
    saves = [i for i, (kind, h) in enumerate(store.log) if kind == "save" and len(h) == 2]
    ended = store.log.index(("event", EventType.SESSION_ENDED))
    assert saves and saves[0] < ended
    _, history = store.log[saves[0]]
    assert [(m.content, m.interrupted) for m in history] == [  # type: ignore[attr-defined]
        ("tell me a long story", False),
        (heard, True),
    ]


async def test_a_client_that_leaves_mid_reply_resumes_with_the_heard_part() -> None:
    server = DemoServer(long_reply)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, SessionStart(16000)) as old:
                await old.send(Text("tell me a long story"))
                await old.wait_for(lambda m: sum(len(a.pcm) for a in old.audio(1)) >= 16000)
                await old.send(Playback(1, 16000))
                await old.wait_for(
                    lambda m: isinstance(m, TurnMark) and m.mark == "audio_played_first"
                )
            await server.sessions.wait_idle()  # the connection is gone mid-reply
            one = started_of(old.messages)
            start = SessionStart(16000, session_id=one.session_id, resume_secret=one.resume_secret)
            async with connect(port, start) as new:
                resumed = started_of(new.messages)
    spans = [w for m in old.of(Words) if m.turn == 1 for w in m.words]
    heard = " ".join(w.text for w in spans if w.end <= 16000)
    assert heard.startswith("la la")
    assert resumed.resumed and resumed.history == (
        HistoryEntry("user", "tell me a long story"),
        HistoryEntry("assistant", heard, interrupted=True),
    )


async def test_a_turn_waiting_for_its_predecessor_when_the_session_closes_keeps_the_user_text(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Typed text cuts the reply and the session closes in the same instant: the new turn,
    still waiting for the cut one to commit, ends too, after it, with the user's words kept."""
    transport = OrderedTransport()
    async with open_session(SessionConfig(), long_engines(), transport) as session:
        transport.watch(session)
        session.push_text("tell me a story")
        await trio.sleep(3.01)
        session.push_text("no, a poem")
        await trio.lowlevel.checkpoint()  # the floor opened turn 2: it waits for turn 1 …
        session.close()  # … and the session ends now
    roles = [(m.role, m.interrupted) for m in session.messages]
    assert roles == [("user", False), ("assistant", True), ("user", False), ("assistant", True)]
    assert session.messages[2].content == "no, a poem" and session.messages[3].content == ""
    ends = [(e.turn, e.data["reason"]) for e in transport.of_type(EventType.TURN_CANCELLED)]
    assert ends == [(1, "text_input"), (2, "session_ended")]
    assert_turn_truth(transport.events, session.messages)
