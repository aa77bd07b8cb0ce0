"""The mic front ends of all sessions run in one shared task step per wake-up
(`runtime.shared_steps`), not a task step per session per 20 ms chunk; the session's own mic task
takes over whatever cannot finish synchronously, in order, and a failure or a cancellation stays
the session's own (counted by a trio instrument on a virtual clock, never by wall time)."""

from __future__ import annotations

from collections import Counter

import numpy as np
import trio
import trio.testing

from bargein.actors.floor import FloorInput
from bargein.actors.level_tap import LevelTap
from bargein.actors.mic import run_mic
from bargein.actors.vad import END_OF_INPUT, EndOfInput, MicInput, VadConfig, VadOutput
from bargein.runtime.broadcast import DropOldestQueue
from bargein.runtime.bus import EventBus
from bargein.runtime.messages import AudioFrame

FRAME = 320  # 20 ms at 16 kHz


class Steps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] += 1


class _Mic:
    """One `run_mic` with its channels, as a session wires it."""

    def __init__(self, *, stt_capacity: int = 64, ingress: int = 16,
                 levels: LevelTap | None = None) -> None:
        self.ingress: DropOldestQueue[MicInput] = DropOldestQueue(ingress)
        self.stt_send, self.stt = trio.open_memory_channel[VadOutput](stt_capacity)
        self.floor_send, self.floor = trio.open_memory_channel[FloorInput](64)
        self.levels = levels
        self.failure: BaseException | None = None
        self.ended = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        try:
            await run_mic(
                self.ingress, VadConfig(), self.stt_send, self.floor_send,
                EventBus("s", trio.current_time()),
                input_rate=16000, frame_ms=20, batch_frames=5, levels=self.levels,
                task_status=task_status,
            )
            self.ended = True
        except Exception as exc:
            self.failure = exc

    def frames(self) -> list[AudioFrame]:
        out: list[AudioFrame] = []
        while True:
            try:
                item = self.stt.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return out
            if isinstance(item, tuple):
                out.extend(item)


def _chunk(k: int) -> np.ndarray:
    return np.full(FRAME, k % 100, np.int16)


async def test_many_sessions_cost_one_shared_step_per_tick_not_one_each(
    autojump_clock: trio.testing.MockClock,
) -> None:
    steps = Steps()
    mics = [_Mic() for _ in range(10)]
    ticks = 50
    async with trio.open_nursery() as nursery:
        for k, mic in enumerate(mics):
            await nursery.start(mic.run, name=f"mic{k}")
        trio.lowlevel.add_instrument(steps)
        for t in range(ticks):
            for mic in mics:  # one reader hands every session its chunk, as a transport does
                mic.ingress.put_nowait(_chunk(t))
            await trio.sleep(0.02)
        trio.lowlevel.remove_instrument(steps)
        for mic in mics:
            mic.ingress.put_nowait(END_OF_INPUT)
            mic.ingress.close()
    for mic in mics:
        assert mic.ended and mic.failure is None
        frames = mic.frames()
        assert [f.start for f in frames] == [k * FRAME for k in range(ticks)]
    # the mic tasks slept through it all; the shared task woke once per tick
    assert sum(n for name, n in steps.steps.items() if name.startswith("mic")) == 0
    assert steps.steps["bargein.shared_steps"] <= ticks + 1


async def test_a_full_stt_channel_hands_over_to_the_mic_task_and_loses_nothing_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """STT behind: the front end's output waits in the mic task (not in the shared one), the
    ingress queue fills and drops its oldest, counted; what got through is in media order."""
    mic = _Mic(stt_capacity=1, ingress=4)
    pushed = 40
    async with trio.open_nursery() as nursery:
        await nursery.start(mic.run)
        for t in range(pushed):
            mic.ingress.put_nowait(_chunk(t))
            await trio.sleep(0.02)
        assert mic.ingress.dropped > 0  # the mic task was blocked on STT, so the queue overflowed
        got: list[AudioFrame] = []
        mic.ingress.put_nowait(END_OF_INPUT)
        mic.ingress.close()
        async for item in mic.stt:  # STT catches up
            if isinstance(item, tuple):
                got.extend(item)
            elif isinstance(item, EndOfInput):
                break
    assert mic.ended and mic.failure is None
    starts = [f.start for f in got]
    assert starts == [k * FRAME for k in range(len(starts))]  # contiguous: nothing repeated
    assert len(starts) + mic.ingress.dropped == pushed  # every chunk reached STT or was counted
    levels = [int(f.pcm[0]) for f in got]
    assert levels == sorted(levels)  # the oldest chunks were the ones dropped


class _Broken(LevelTap):
    def frame(self, frame: AudioFrame) -> None:
        if frame.start >= 3 * FRAME:
            raise RuntimeError("broken tap")
        super().frame(frame)


async def test_a_failing_front_end_ends_its_own_mic_task_and_no_other(
    autojump_clock: trio.testing.MockClock,
) -> None:
    broken, healthy = _Mic(levels=_Broken(shapes=False)), _Mic()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            await nursery.start(broken.run)
            await nursery.start(healthy.run)
            for t in range(10):
                broken.ingress.put_nowait(_chunk(t))
                healthy.ingress.put_nowait(_chunk(t))
                await trio.sleep(0.02)
            assert isinstance(broken.failure, RuntimeError)  # raised where the guard sees it
            healthy.ingress.put_nowait(END_OF_INPUT)
            healthy.ingress.close()
    assert healthy.ended and len(healthy.frames()) == 10


async def test_a_cancelled_mic_runs_no_front_end_afterwards(
    autojump_clock: trio.testing.MockClock,
) -> None:
    mic, other = _Mic(), _Mic()  # another session keeps the shared task running
    async with trio.open_nursery() as outer:
        await outer.start(other.run)
        async with trio.open_nursery() as nursery:
            await nursery.start(mic.run)
            mic.ingress.put_nowait(_chunk(0))
            await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        for t in range(1, 10):  # the transport still pushes: nobody must process it
            mic.ingress.put_nowait(_chunk(t))
            other.ingress.put_nowait(_chunk(t))
            await trio.sleep(0.02)
        assert len(mic.ingress) == 9 and mic.frames() == []
        assert "bargein.shared_steps" in {t.name for t in _all_tasks()}
        other.ingress.put_nowait(END_OF_INPUT)
        other.ingress.close()
    assert other.ended and len(other.frames()) == 9
    assert "bargein.shared_steps" not in {t.name for t in _all_tasks()}  # unused: it ended


def _all_tasks() -> list[trio.lowlevel.Task]:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    out, todo = [], [root]
    while todo:
        task = todo.pop()
        out.append(task)
        for nursery in task.child_nurseries:
            todo.extend(nursery.child_tasks)
    return out
