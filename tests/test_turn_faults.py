"""Faults inside a turn: an overall deadline for the planner's reply (backpressure excluded), a
failed turn never reported `completed`, a short spoken fallback instead of dead air."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
import trio
import trio.testing

from bargein.engines.base import Engines, PlanOutput, PlanRequest, Sink, TextDelta
from bargein.runtime.events import EventType
from bargein.session import SessionConfig, open_session
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

FALLBACK = "Sorry, something went wrong."


class Trickle:
    """An upstream that never errors: one token every `every_s`."""

    name = "trickle"

    def __init__(self, every_s: float, words: Sequence[str]) -> None:
        self.every_s, self.words = every_s, words

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        for word in self.words:
            await out.send(TextDelta(word))
            await trio.sleep(self.every_s)


async def converse(planner: object, tts: ScriptedTts, **config: object) -> MemoryTransport:
    transport = MemoryTransport()
    eng = Engines(ScriptedStt(), planner, tts)  # type: ignore[arg-type]
    async with open_session(SessionConfig(**config), eng, transport) as session:  # type: ignore[arg-type]
        session.push_text("hello")
        await trio.sleep(120)
        assert not session.ended  # the session stays usable
        transport.t0 = session.bus.t0  # type: ignore[attr-defined]
    return transport


async def test_a_trickling_upstream_meets_the_turn_deadline_and_the_user_hears_the_fallback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tts = ScriptedTts()
    planner = Trickle(9.0, ["Well,", " let", " me", " think", " about", " that."])
    transport = await converse(planner, tts, turn_deadline_ms=5000)
    error = transport.of_type(EventType.ERROR)[0]
    started = transport.of_type(EventType.TURN_STARTED)[0]
    assert error.data["source"] == "planner" and error.data["error"] == "TimeoutError"
    assert error.t - started.t == pytest.approx(5.0)
    assert tts.sentences == ["Well,", FALLBACK]  # what the model said, then the fallback
    assert not transport.of_type(EventType.TURN_COMPLETED)
    ended = transport.of_type(EventType.TURN_CANCELLED)[0]
    assert ended.data["reason"] == "deadline"
    assert ended.data["heard_text"] == ended.data["committed_text"] == f"Well, {FALLBACK}"
    # The fallback is heard within 2 s of the fault (here: at once).
    t0 = transport.t0  # type: ignore[attr-defined]
    after = [t - t0 for t, _ in transport.frames if t - t0 >= error.t]
    assert after and after[0] - error.t <= 2.0


async def test_a_long_reply_paced_by_playback_is_not_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    reply = " ".join(f"This is sentence number {i} of a long story." for i in range(30))
    tts = ScriptedTts()  # ~75 s of audio: the instant planner is held up by backpressure
    transport = await converse(ScriptedPlanner([reply]), tts, turn_deadline_ms=5000)
    assert not transport.of_type(EventType.ERROR)
    done = transport.of_type(EventType.TURN_COMPLETED)[0]
    assert done.data["heard_text"] == reply and done.data["heard_ms"] > 60_000


async def test_a_single_wait_for_playback_longer_than_the_deadline_is_not_late(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Each hand-off of a sentence waits about 2.5 s for playback, longer than the whole
    deadline: the deadline is lifted while a piece is handed on, not only moved after."""
    reply = " ".join(f"This is sentence number {i} of a long story." for i in range(12))
    transport = await converse(ScriptedPlanner([reply]), ScriptedTts(), turn_deadline_ms=1000)
    assert not transport.of_type(EventType.ERROR)
    assert transport.of_type(EventType.TURN_COMPLETED)[0].data["heard_text"] == reply


async def test_a_turn_runs_no_task_for_its_deadline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The deadline is the engine scope's own (`SentenceSink.limit`): no task of its own."""

    class Spawned(trio.abc.Instrument):
        def __init__(self) -> None:
            self.names: list[str] = []

        def task_spawned(self, task: trio.lowlevel.Task) -> None:
            self.names.append(task.name)

    spawned = Spawned()
    trio.lowlevel.add_instrument(spawned)
    transport = await converse(ScriptedPlanner(["One two."]), ScriptedTts(),
                               turn_deadline_ms=5000)
    trio.lowlevel.remove_instrument(spawned)
    assert transport.of_type(EventType.TURN_COMPLETED)
    assert not [n for n in spawned.names if "deadline" in n]
    assert [n for n in spawned.names if n.endswith("run_planner")]  # (names are seen)


async def test_a_planner_failing_before_any_token_is_answered_by_the_fallback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tts = ScriptedTts()
    transport = await converse(ScriptedPlanner(["x"], fail_after_tokens=0), tts)
    assert tts.sentences == [FALLBACK]
    ended = transport.of_type(EventType.TURN_CANCELLED)[0]
    assert (ended.data["reason"], ended.data["heard_text"]) == ("error", FALLBACK)
    fallback = [e for e in transport.of_type(EventType.ASSISTANT_TEXT) if e.data.get("fallback")]
    assert [e.data["delta"] for e in fallback] == [" " + FALLBACK]


async def test_no_fallback_when_configured_off_and_still_not_completed(
    autojump_clock: trio.testing.MockClock,
) -> None:
    tts = ScriptedTts()
    planner = ScriptedPlanner(["One two three four."], fail_after_tokens=2)
    transport = await converse(planner, tts, fallback_text="")
    assert tts.sentences == ["One two"]
    assert not transport.of_type(EventType.TURN_COMPLETED)
    assert transport.of_type(EventType.TURN_CANCELLED)[0].data["reason"] == "error"


class BurstThenSlow:
    """Many sentences at once (held up by backpressure for a long while), then a slow tail."""

    name = "burst"

    def __init__(self, burst: str, tail: Sequence[str], every_s: float) -> None:
        self.burst, self.tail, self.every_s = burst, tail, every_s

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        for word in self.burst.split(" "):
            await out.send(TextDelta(" " + word))
        for word in self.tail:
            await trio.sleep(self.every_s)
            await out.send(TextDelta(word))


async def test_the_deadline_counts_the_models_own_time_not_the_wait_for_playback(
    autojump_clock: trio.testing.MockClock,
) -> None:
    burst = " ".join(f"This is sentence number {i} of a long story." for i in range(20))
    # Blocked ~40 s by playback, then 3 s of its own: within a 5 s deadline.
    planner = BurstThenSlow(burst, [" And", " the", " end."], every_s=1.0)
    transport = await converse(planner, ScriptedTts(), turn_deadline_ms=5000)
    assert not transport.of_type(EventType.ERROR)
    done = transport.of_type(EventType.TURN_COMPLETED)[0]
    assert done.data["heard_text"].endswith("And the end.")


def test_deadline_and_fallback_are_validated() -> None:
    with pytest.raises(ValueError, match="turn_deadline_ms"):
        SessionConfig(turn_deadline_ms=0)
    with pytest.raises(ValueError, match="fallback_text"):
        SessionConfig(fallback_text="x" * 501)
