"""STT takes its batches of frames in the run's shared step while its task waits (outside
speech: the pre-roll ring; in speech: a recognizer with `feed_nowait`), without a task step per
batch; what it says is what the task would say, and whatever needs a wait goes to the task, in
order (`actors.stt_inbox`). Counted by a trio instrument on a virtual clock, never wall time."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors.policy import InterruptionPolicy
from bargein.actors.stt_inbox import SttInbox
from bargein.actors.vad import END_OF_INPUT
from bargein.engines.base import Engines, Recognizer
from bargein.filerun import converse
from bargein.runtime.events import EventType
from bargein.runtime.messages import AudioFrame, Int16Array, SpeechStarted
from bargein.runtime.shared_steps import shared_steps
from bargein.session import SessionConfig
from bargein.testing.audio import load, place
from bargein.testing.scripted import ScriptedPlanner, ScriptedRecognizer, ScriptedStt, ScriptedTts

FRAME = 320
REPLY = "Here is a reply that runs for a few seconds. It keeps talking until it is cut short."


# How far the cut turn's TTS had run ahead when the barge-in came: TTS refills in the same
# instant as the cancel, in trio's random order, so either path reads 94 or 95 frames.
_RACY = {"frames_dropped", "synthesized_ms"}


class ActorSteps(trio.abc.Instrument):
    """Task steps per session actor (the `_guard` task's actor name)."""

    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        frame = getattr(task.coro, "cr_frame", None)
        name = frame.f_locals.get("name") if frame is not None else None
        self.steps[str(name) if isinstance(name, str) else task.name] += 1


class AwaitingStt(ScriptedStt):
    """The same recognizer without `feed_nowait`: every batch in speech goes through its task."""

    def __init__(self, ms_per_word: float) -> None:
        super().__init__(default="go forward please", ms_per_word=ms_per_word)
        self.feeds = 0

    def recognizer(self) -> Recognizer:
        engine = self

        class Awaiting(ScriptedRecognizer):
            async def feed(self, pcm: Int16Array) -> str | None:
                engine.feeds += 1
                return await super().feed(pcm)

        return Awaiting(self)


def _run(stt: ScriptedStt) -> tuple[list[tuple[str, float, int | None, str]], Counter[str]]:
    utterance = load("pocketsphinx_goforward.raw")
    pcm = place(9000, (0, utterance), (4500, utterance))
    engines = Engines(stt, ScriptedPlanner([REPLY]), ScriptedTts())
    config = SessionConfig(compute="inline", policy=InterruptionPolicy(mode="onset"))
    steps = ActorSteps()

    async def main() -> list[tuple[str, float, int | None, str]]:
        trio.lowlevel.add_instrument(steps)
        conv = await converse(pcm, 16000, engines, config)
        return [
            (e.type.value, round(e.t, 6), e.turn,
             repr(sorted((k, v) for k, v in e.data.items() if k not in _RACY)))
            for e in conv.events if e.type != EventType.SESSION_STARTED
        ]

    events = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return events, steps.steps


def test_batches_take_no_stt_task_step_and_say_what_the_task_would() -> None:
    inline_stt = ScriptedStt(default="go forward please", ms_per_word=150)
    inline, inline_steps = _run(inline_stt)
    awaiting_stt = AwaitingStt(ms_per_word=150)
    awaited, awaited_steps = _run(awaiting_stt)
    kinds = [kind for kind, *_ in inline]
    assert kinds.count("transcript_partial") >= 4 and kinds.count("transcript_final") == 2
    assert kinds.count("barge_in") == 1  # the second utterance cuts the first reply
    # The same events at the same times. (Within one instant trio orders tasks at random, so
    # two runs of either path may list an instant's events in different orders.)
    assert sorted(inline) == sorted(awaited)
    assert awaiting_stt.feeds >= 20  # the task path fed every batch in speech
    # Inline, the STT task steps only for utterance starts and ends (and its start-up): not
    # once or twice per 100 ms batch, as it still does without `feed_nowait`.
    assert inline_steps["stt"] <= 20
    assert awaited_steps["stt"] >= inline_steps["stt"] + 2 * awaiting_stt.feeds


def _frames(start: int, n: int) -> tuple[AudioFrame, ...]:
    return tuple(
        AudioFrame(np.zeros(FRAME, np.int16), (start + k) * FRAME, 16000) for k in range(n)
    )


async def test_a_declined_item_and_all_behind_it_go_to_the_task_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inbox = SttInbox(8)
    inline: list[object] = []
    received: list[object] = []

    def handle(item: object) -> bool:
        if isinstance(item, tuple):
            inline.append(item)
            return True
        return False  # an onset: the task must start an utterance

    async def stt() -> None:
        async for item in inbox:
            received.append(item)
            await trio.sleep(0.01)  # an engine call: items queue meanwhile

    steps = shared_steps()
    steps.attach()
    inbox.handle_inline(handle)
    onset = SpeechStarted(onset=0.1, at=0.2)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(stt)
        await trio.testing.wait_all_tasks_blocked()
        a, b, c = _frames(0, 5), _frames(5, 5), _frames(10, 5)
        inbox.send_nowait(a)
        await trio.testing.wait_all_tasks_blocked()
        inbox.send_nowait(onset)
        inbox.send_nowait(b)  # behind the declined onset: the task's, not inline
        await trio.testing.wait_all_tasks_blocked()
        await trio.sleep(0.1)
        inbox.send_nowait(c)  # the task waits again: inline again
        await trio.testing.wait_all_tasks_blocked()
        inbox.send_nowait(END_OF_INPUT)
        inbox.close()
    steps.detach()
    assert inline == [a, c]
    assert received == [onset, b, END_OF_INPUT]
    assert inbox.handled_inline == 2


async def test_the_inbox_keeps_the_channel_contract(autojump_clock: trio.testing.MockClock) -> None:
    inbox = SttInbox(2)
    inbox.send_nowait(_frames(0, 1))
    inbox.send_nowait(_frames(1, 1))
    with pytest.raises(trio.WouldBlock):  # bounded: the mic waits (its ingress drops the oldest)
        inbox.send_nowait(_frames(2, 1))
    sent: list[bool] = []

    async def late_sender() -> None:
        await inbox.send(_frames(2, 1))
        sent.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(late_sender)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent
        first = await inbox.receive()
        await trio.testing.wait_all_tasks_blocked()
        assert sent == [True]  # room made: the waiting sender went on
    assert isinstance(first, tuple) and first[0].start == 0
    inbox.close()
    assert [i[0].start for i in [await inbox.receive(), await inbox.receive()]  # type: ignore[index]
            ] == [FRAME, 2 * FRAME]
    with pytest.raises(trio.EndOfChannel):
        await inbox.receive()
    gone = SttInbox(2)
    gone.close_receiver()
    with pytest.raises(trio.BrokenResourceError):
        gone.send_nowait(_frames(0, 1))


async def test_a_failure_in_the_inline_step_is_raised_in_the_stt_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    inbox = SttInbox(8)

    def handle(item: object) -> bool:
        raise RuntimeError("broken ring")

    steps = shared_steps()
    steps.attach()
    inbox.handle_inline(handle)
    failures: list[BaseException] = []

    async def stt() -> None:
        try:
            async for _ in inbox:
                pass
        except RuntimeError as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(stt)
        await trio.testing.wait_all_tasks_blocked()
        inbox.send_nowait(_frames(0, 5))
        await trio.sleep(1)
    steps.detach()
    assert [str(f) for f in failures] == ["broken ring"]  # in the STT task, not the shared one
