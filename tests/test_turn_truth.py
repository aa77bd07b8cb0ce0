"""What was heard, under every race: each defect of issue 11 reproduced from outside, and the
invariants every run must keep (checked by `assert_turn_truth` on the whole event stream)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
import trio
import trio.testing

from bargein.engines.base import Engines, PlanOutput, PlanRequest, Sink, TextDelta, TtsChunk
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import OutFrame
from bargein.session import Session, SessionConfig, open_session
from bargein.testing.memory import MemoryTransport, OrderedTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

STORY = (
    "Once upon a time there was a small robot. It lived in a quiet town by the sea. "
    "Every morning it walked to the harbour to count the boats."
)


def assert_turn_truth(events: Sequence[Event], messages: Sequence[ChatMessage]) -> None:
    """Every turn ends once; a barge-in always stops output (`output_cleared`) and ends the turn
    cancelled; a completed turn had no barge-in; the history holds exactly what each turn
    reported as committed, with the right `interrupted` flag."""
    ends = [e for e in events if e.type in (EventType.TURN_COMPLETED, EventType.TURN_CANCELLED)]
    started = [e.turn for e in events if e.type == EventType.TURN_STARTED]
    assert sorted(e.turn for e in ends if e.turn is not None) == sorted(t for t in started if t)
    by_turn = {e.turn: e for e in ends}
    for barge in (e for e in events if e.type == EventType.BARGE_IN):
        assert by_turn[barge.turn].type == EventType.TURN_CANCELLED, barge
        cleared = [
            e for e in events if e.type == EventType.OUTPUT_CLEARED and e.turn == barge.turn
        ]
        assert cleared and cleared[0].seq > barge.seq, barge
    assistants = [m for m in messages if m.role == "assistant"]
    committed = [e for e in ends if e.data["committed_text"] or e.type == EventType.TURN_CANCELLED]
    assert [(m.content, m.interrupted) for m in assistants] == [
        (e.data["committed_text"], e.type == EventType.TURN_CANCELLED) for e in committed
    ]
    for e in ends:
        assert e.data["committed_text"] == e.data["heard_text"]  # heard is what was committed


def story_engines() -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner([STORY]), ScriptedTts())


# -- defect 1: a turn cancelled before it opens its feed -------------------------------------


async def test_turn_cancelled_before_its_feed_opens_is_cancelled_and_commits_nothing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = OrderedTransport()
    eng = story_engines()
    async with open_session(SessionConfig(), eng, transport) as session:
        transport.watch(session)
        session.push_text("tell me a story")
        await trio.sleep(1.0)
        session.push_text("b")  # turn 2 opens after turn 1 has committed …
        session.push_text("c")  # … and is cancelled before that
        await trio.sleep(15)
    two = [e for e in transport.events if e.turn == 2]
    assert [e.type for e in two if e.type.startswith("turn_")] == [
        EventType.TURN_STARTED, EventType.TURN_CANCELLED
    ]
    cancelled = two[-1]
    assert cancelled.data["sent_ms"] == 0 and cancelled.data["heard_text"] == ""
    assert not transport.turn_frames(2)
    assert ("clear", 2) in transport.log  # the interrupt held: the peer is told, too
    asked = [r.messages[-1].content for r in eng.planner.requests]  # type: ignore[attr-defined]
    assert asked == ["tell me a story", "c"]  # the turn cancelled before it began asked nothing
    roles = [(m.role, m.content, m.interrupted) for m in session.messages]
    assert roles[2:5] == [("user", "b", False), ("assistant", "", True), ("user", "c", False)]
    assert_turn_truth(transport.events, session.messages)


# -- defect 3: completion is what the peer played ---------------------------------------------


class ReportingPeer(OrderedTransport):
    """A peer with a jitter buffer that reports playback every `every_s` (like the page)."""

    def __init__(self, lead_s: float, every_s: float = 0.1) -> None:
        super().__init__()
        self.lead_s, self.every_s = lead_s, every_s
        self.received: dict[int, list[tuple[float, int]]] = {}
        self.session: Session | None = None

    async def send_audio(self, frame: OutFrame) -> None:
        # It starts playing a turn's audio `lead_s` after the first frame arrives.
        got = self.received.setdefault(frame.turn, [])
        got.append((trio.current_time(), frame.end))
        await super().send_audio(frame)

    def played(self, turn: int, now: float) -> int:
        got = self.received.get(turn)
        if not got:
            return 0
        start = got[0][0] + self.lead_s
        return min(got[-1][1], max(0, int((now - start) * 16000)))

    async def report_forever(self) -> None:
        while True:
            await trio.sleep(self.every_s)
            assert self.session is not None
            for turn in list(self.received):
                self.session.report_playback(turn, self.played(turn, trio.current_time()))


async def test_completed_turn_heard_is_the_whole_reply_and_equals_history(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer = ReportingPeer(lead_s=0.2, every_s=0.1)
    config = SessionConfig(egress_lead_ms=200)
    async with open_session(config, story_engines(), peer) as session:
        peer.session = session
        async with trio.open_nursery() as reporter:
            reporter.start_soon(peer.report_forever)
            for text in ("one", "two", "three"):
                session.push_text(text)
                await trio.sleep(20)
            reporter.cancel_scope.cancel()
    done = peer.of_type(EventType.TURN_COMPLETED)
    assert len(done) == 3
    for e in done:
        assert e.data["heard_text"] == STORY == e.data["committed_text"]
        assert e.data["heard_ms"] == e.data["sent_ms"]
    assert [m.content for m in session.messages if m.role == "assistant"] == [STORY] * 3
    assert_turn_truth(peer.events, session.messages)


def all_sent(session: Session, turn: int) -> bool:
    """TTS has finished the turn and egress has sent every frame of it."""
    feed = session.egress._by_turn.get(turn)
    if feed is None:
        return False
    stats = feed.frames.statistics()
    return stats.open_send_channels == 0 and stats.current_buffer_used == 0


async def test_barge_in_stays_live_while_the_tail_plays(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The peer's jitter buffer holds 250 ms (within the grace): the last frame plays ~250 ms
    # after egress sent it, and talking over that tail must still clear it.
    peer = ReportingPeer(lead_s=0.25, every_s=0.05)
    async with open_session(SessionConfig(), story_engines(), peer) as session:
        peer.session = session
        transport = peer
        transport.watch(session)
        async with trio.open_nursery() as reporter:
            reporter.start_soon(peer.report_forever)
            session.push_text("story")
            await trio.sleep(1)
            while not all_sent(session, 1):  # noqa: ASYNC110 - polling on the virtual clock
                await trio.sleep(0.01)
            await trio.sleep(0.1)  # every frame sent and paced out; the tail still plays
            assert peer.played(1, trio.current_time()) < session.egress._by_turn[1].cursor.sent
            session.push_text("stop")
            await trio.sleep(10)
            reporter.cancel_scope.cancel()
    kinds = [e.type for e in peer.events if e.turn == 1]
    assert EventType.TURN_COMPLETED not in kinds, kinds
    assert EventType.OUTPUT_CLEARED in kinds and ("clear", 1) in peer.log
    cancelled = peer.of_type(EventType.TURN_CANCELLED)[0]
    assert cancelled.data["heard_text"] != STORY and STORY.startswith(cancelled.data["heard_text"])
    assert_turn_truth(peer.events, session.messages)


# -- defect 4: a barge-in after egress finished, before the floor knows -----------------------


class HookedEvent:
    """Stands in for a feed's `done` event and runs `hook` the instant it is set."""

    def __init__(self, hook: object) -> None:
        self._event = trio.Event()
        self._hook = hook

    def set(self) -> None:
        self._event.set()
        self._hook()  # type: ignore[operator]

    def is_set(self) -> bool:
        return self._event.is_set()

    async def wait(self) -> None:
        await self._event.wait()


@pytest.mark.parametrize("moment", ["egress_done", "turn_completed"])
async def test_late_barge_in_after_the_audio_played_keeps_the_turn_completed(
    autojump_clock: trio.testing.MockClock, moment: str
) -> None:
    transport = OrderedTransport()
    async with open_session(SessionConfig(), story_engines(), transport) as session:
        transport.watch(session)
        session.push_text("story")
        if moment == "egress_done":
            # Egress lets go of the turn; the floor hears the user before the turn runner runs.
            def hook(e: Event) -> None:
                if e.type == EventType.LLM_FIRST_TOKEN and e.turn == 1:  # the feed is open
                    hooked = HookedEvent(lambda: session.push_text("again"))
                    session.egress._by_turn[1].done = hooked  # type: ignore[assignment]

            session.bus.add_listener(hook)
        else:
            # The turn settled as completed; the floor hears the user before TurnFinished.
            def again(e: Event) -> None:
                if e.type == EventType.TURN_COMPLETED and e.turn == 1:
                    session.push_text("again")

            session.bus.add_listener(again)
        await trio.sleep(30)
    one = [e.type for e in transport.events if e.turn == 1]
    assert EventType.TURN_COMPLETED in one and EventType.BARGE_IN not in one, one
    assert session.stats()["interrupts_late"] == 1
    assert session.messages[1] == ChatMessage("assistant", STORY, False)
    assert_turn_truth(transport.events, session.messages)


async def test_end_of_turn_reaches_a_full_floor_inbox(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The floor's inbox is full when the turn ends: TurnFinished waits its turn, not lost."""
    from bargein.runtime.messages import VoiceActivity

    transport = MemoryTransport()
    filled: list[int] = []

    def fill(session: Session, event: Event) -> None:
        if event.type == EventType.TURN_COMPLETED and event.turn == 1:
            n = 0
            while True:
                try:
                    session._floor_send.send_nowait(VoiceActivity(False, 0.0))
                    n += 1
                except trio.WouldBlock:
                    break
            filled.append(n)

    async with open_session(SessionConfig(), story_engines(), transport) as session:
        session.bus.add_listener(lambda e: fill(session, e))
        session.push_text("story")
        await trio.sleep(20)
        assert filled and filled[0] > 0
        assert session.floor.machine.active_turn is None  # the floor learned the turn ended
        session.push_text("next")
        await trio.sleep(20)
    assert [e.turn for e in transport.of_type(EventType.TURN_COMPLETED)] == [1, 2]


# -- defect 2: the quiet flush ----------------------------------------------------------------


class TimedPlanner:
    """Streams `(delay_s, text)` deltas: the model is silent for `delay_s` before each."""

    name = "timed"

    def __init__(self, script: Sequence[tuple[float, str]]) -> None:
        self.script = script

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        for delay, text in self.script:
            if delay:
                await trio.sleep(delay)
            await out.send(TextDelta(text))


class SlowTts(ScriptedTts):
    """Each sentence takes `compute_s` before its audio (the TTS task is busy meanwhile)."""

    def __init__(self, compute_s: float) -> None:
        super().__init__()
        self.compute_s = compute_s

    async def synthesize(self, text: str, out: Sink[TtsChunk]) -> None:
        await trio.sleep(self.compute_s)
        await super().synthesize(text, out)


async def run_reply(planner: TimedPlanner, tts: ScriptedTts, quiet_flush_ms: int) -> Session:
    transport = MemoryTransport()
    eng = Engines(ScriptedStt(), planner, tts)
    config = SessionConfig(quiet_flush_ms=quiet_flush_ms)
    async with open_session(config, eng, transport) as session:
        session.push_text("hi")
        await trio.sleep(120)
    assert_turn_truth(transport.events, session.messages)
    return session


async def test_quiet_model_gets_its_words_spoken_before_the_sentence_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tts = ScriptedTts()
    planner = TimedPlanner([(0, "Hello"), (0, " there"), (2.0, " my"), (0, " friend.")])
    session = await run_reply(planner, tts, quiet_flush_ms=600)
    assert tts.sentences == ["Hello there", "my friend."]
    assert session.messages[-1].content == "Hello there my friend."


async def test_tts_backpressure_is_not_model_silence(
    autojump_clock: trio.testing.MockClock,
) -> None:
    sentences = [f"Sentence number {i} is here and it is quite long." for i in range(14)]
    script = [(0.0, word) for s in sentences for word in (" " + s).split(" ")[1:] for word in
              [" " + word]]
    tts = SlowTts(compute_s=1.5)  # far slower than the model: the sentence queue fills up
    session = await run_reply(TimedPlanner(script), tts, quiet_flush_ms=600)
    assert tts.sentences == sentences  # cut at full stops only, never at a blocked hand-off
    assert session.messages[-1].content == " ".join(sentences)


async def test_quiet_flush_cancelled_mid_hand_off_loses_no_text(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Ten quick sentences fill the sentence queue while TTS is busy; then the model says "How",
    # goes quiet (the flush takes "How" and waits for room), and ends with " are you".
    quick = [(0.0, f" S{i}.") for i in range(10)]
    script = [(0.0, "Hello"), (0.0, " there."), *quick, (0.0, " How"), (1.0, " are you")]
    tts = SlowTts(compute_s=3.0)
    session = await run_reply(TimedPlanner(script), tts, quiet_flush_ms=600)
    spoken = " ".join(tts.sentences)
    assert spoken == "Hello there. " + " ".join(f"S{i}." for i in range(10)) + " How are you"
    assert session.messages[-1].content == spoken


# -- 5: forwarder drops are reported ----------------------------------------------------------


class StuckEvents(MemoryTransport):
    """Takes audio, but stops taking events after the first few."""

    async def send_event(self, event: Event) -> None:
        if len(self.events) >= 3:
            await trio.sleep(3600)  # an hour, not forever: an unbounded close fails, not hangs
        await super().send_event(event)


async def test_events_the_forwarder_dropped_are_in_stats_and_session_ended(
    autojump_clock: trio.testing.MockClock, tmp_path: object
) -> None:
    import json
    from pathlib import Path

    trace = Path(str(tmp_path)) / "t.jsonl"
    transport = StuckEvents()
    config = SessionConfig(trace_path=str(trace))
    async with open_session(config, story_engines(), transport) as session:
        for _ in range(5000):  # more events than the forwarder's queue holds
            session.reject("noise")
        await trio.sleep(1)
        assert session.stats()["events_dropped"] > 0
    ended = json.loads(trace.read_text().splitlines()[-1])
    assert ended["type"] == "session_ended" and ended["events_dropped"] > 0


def test_history_window_keeps_the_system_prompt_and_the_newest() -> None:
    from bargein.runtime.history import History

    h = History("be brief", [ChatMessage("user", "x" * 50), ChatMessage("assistant", "y" * 50)])
    h.add_user("z" * 30)
    assert h.window(None) == h.messages()
    assert [m.content[:1] for m in h.window(85)] == ["b", "y", "z"]
    assert [m.content[:1] for m in h.window(10)] == ["b", "z"]  # the newest always goes
    assert np.sum([len(m.content) for m in h.window(200)]) == 138


async def test_planner_request_is_bounded_by_the_history_budget(
    autojump_clock: trio.testing.MockClock,
) -> None:
    earlier = tuple(
        ChatMessage("user" if i % 2 == 0 else "assistant", f"{i:02d}" + "x" * 48)
        for i in range(40)
    )
    planner = ScriptedPlanner(["Okay."])
    config = SessionConfig(system_prompt="be brief", history=earlier, history_chars=200)
    async with open_session(config, Engines(ScriptedStt(), planner, ScriptedTts()),
                            MemoryTransport()) as session:
        session.push_text("and now?")
        await trio.sleep(5)
    sent = planner.requests[0].messages
    assert sent[0] == ChatMessage("system", "be brief")
    assert sent[-1] == ChatMessage("user", "and now?")
    assert sum(len(m.content) for m in sent[1:]) <= 200
    assert [m.content[:2] for m in sent[1:-1]] == ["37", "38", "39"]  # the newest, in order
    # The history itself keeps twice the budget (the newest; a session held for hours must
    # not grow): 400 characters of the 50-character messages, the system prompt beside them.
    assert [m.content[:2] for m in session.messages[1:-2]] == [f"{i}" for i in range(33, 40)]
    assert session.messages[0].role == "system" and session.messages[-1].content == "Okay."


def test_trace_lines_are_written_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    import json
    import threading
    from pathlib import Path

    import bargein.runtime.trace as trace_module

    writers: list[bool] = []
    real_open = open

    class Recording:
        def __init__(self, path: str, mode: str, encoding: str) -> None:
            writers.append(threading.current_thread() is threading.main_thread())
            self._file = real_open(path, mode, encoding=encoding)

        def write(self, text: str) -> int:
            writers.append(threading.current_thread() is threading.main_thread())
            return self._file.write(text)

        def close(self) -> None:
            self._file.close()

    monkeypatch.setattr(trace_module, "open", Recording, raising=False)
    path = Path(str(tmp_path)) / "trace.jsonl"

    async def main() -> None:
        config = SessionConfig(trace_path=str(path))
        async with open_session(config, story_engines(), MemoryTransport()) as session:
            session.push_text("story")
            await trio.sleep(3)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    lines = path.read_text().splitlines()
    assert json.loads(lines[0])["type"] == "session_started"
    assert json.loads(lines[-1])["type"] == "session_ended"
    assert len(writers) > 2 and not any(writers)  # open and every write ran in a worker thread
