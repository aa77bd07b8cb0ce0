"""What a 20 ms frame costs the scheduler: the media plane's hops take no more task steps than
they need (counted by a trio instrument on a virtual clock, never by wall time), and the
single-consumer queue behind them keeps its contract."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors.egress import AudioStarted, Egress
from bargein.actors.playout import PlayoutCursor
from bargein.actors.tts import TurnAudio, _FrameSink
from bargein.actors.turn_feed import FrameBuffer, FrameRun
from bargein.engines.base import Engines
from bargein.runtime.broadcast import DropOldestQueue
from bargein.runtime.bus import EventBus
from bargein.runtime.events import EventType
from bargein.runtime.messages import OutFrame
from bargein.session import SessionConfig, open_session
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

FRAME = 320  # 20 ms at 16 kHz


class Steps(trio.abc.Instrument):
    """Task steps per task name, while `on`."""

    def __init__(self) -> None:
        self.on = False
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.on:
            self.steps[task.name] += 1


def _frames(n: int, turn: int = 1) -> list[OutFrame]:
    return [OutFrame(turn, np.full(FRAME, k, np.int16), k * FRAME) for k in range(n)]


# -- the queue -------------------------------------------------------------------------------


async def test_get_nowait_takes_the_oldest_or_says_why_not() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(4)
    with pytest.raises(trio.WouldBlock):
        q.get_nowait()
    q.put_nowait(1)
    q.put_nowait(2)
    assert q.get_nowait() == 1
    q.close()
    assert q.get_nowait() == 2  # what was queued before the close still comes out
    with pytest.raises(trio.EndOfChannel):
        q.get_nowait()


async def test_a_second_waiting_consumer_is_refused() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(4)
    got: list[int] = []

    async def first() -> None:
        got.append(await q.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await q.get()
        q.put_nowait(7)
    assert got == [7]  # the first consumer was not disturbed


async def test_a_cancelled_wait_leaves_the_queue_to_the_next_consumer() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(4)
    with trio.move_on_after(0.01) as waited:
        await q.get()
    assert waited.cancelled_caught
    got: list[int] = []

    async def consumer() -> None:
        got.append(await q.get())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        q.put_nowait(3)
    assert got == [3]


async def test_close_wakes_a_waiting_consumer_with_end_of_channel() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(4)
    ended: list[bool] = []

    async def consumer() -> None:
        with pytest.raises(trio.EndOfChannel):
            await q.get()
        ended.append(True)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        q.close()
    assert ended == [True]


# -- the hops --------------------------------------------------------------------------------


def _egress(transport: MemoryTransport, buffer_frames: int) -> tuple[
    Egress, trio.MemoryReceiveChannel[AudioStarted]
]:
    bus = EventBus("s", trio.current_time())
    started_send, started_recv = trio.open_memory_channel[AudioStarted](10)
    egress = Egress(transport, bus, rate=16000, lead_ms=0, buffer_frames=buffer_frames,
                    on_audio_started=started_send)
    return egress, started_recv


async def test_egress_paces_a_queued_frame_in_two_task_steps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """One step woken by the clock, one after the transport's write: the frame already queued
    is taken without a third."""
    steps = Steps()
    trio.lowlevel.add_instrument(steps)
    transport = MemoryTransport()
    egress, started = _egress(transport, buffer_frames=100)
    n = 50
    async with trio.open_nursery() as nursery:
        await nursery.start(egress.run, name="egress")
        send, feed = egress.open_turn(1)
        steps.on = True
        for frame in _frames(n):
            send.send_nowait(frame)
        send.close()
        await started.receive()
        await feed.done.wait()
        steps.on = False
        nursery.cancel_scope.cancel()
    t0 = transport.frames[0][0]
    assert [f.start for _, f in transport.frames] == [k * FRAME for k in range(n)]
    assert [t - t0 for t, _ in transport.frames] == pytest.approx([0.02 * k for k in range(n)])
    assert steps.steps["egress"] <= 2 * n + 4


async def test_tts_refills_a_full_feed_a_few_frames_at_a_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """TTS ahead of playout by the whole buffer waits for room in steps of `refill` frames,
    not one wake-up per frame played; every frame still goes out once, in order, on time."""
    steps = Steps()
    trio.lowlevel.add_instrument(steps)
    transport = MemoryTransport()
    buffer_frames, n = 8, 40
    egress, started = _egress(transport, buffer_frames)

    async def tts(feed_send: FrameBuffer) -> None:
        cursor = PlayoutCursor(1, 16000)
        sink = _FrameSink(TurnAudio(1, 16000, 16000, FRAME), feed_send,
                          cursor, EventBus("s", trio.current_time()), feed.wait_room)
        async with feed_send:
            await sink.send_run(FrameRun(1, np.repeat(np.arange(n, dtype=np.int16), FRAME),
                                         0, FRAME))
        assert cursor.synthesized == n * FRAME

    async with trio.open_nursery() as nursery:
        await nursery.start(egress.run, name="egress")
        send, feed = egress.open_turn(1)
        assert feed.refill == 2
        steps.on = True
        nursery.start_soon(tts, send, name="tts")
        await started.receive()
        await feed.done.wait()
        steps.on = False
        nursery.cancel_scope.cancel()
    assert [f.start for _, f in transport.frames] == [k * FRAME for k in range(n)]
    t0 = transport.frames[0][0]
    assert [t - t0 for t, _ in transport.frames] == pytest.approx([0.02 * k for k in range(n)])
    # a wake-up per refill (+ its first step and its last), not one per frame
    assert steps.steps["tts"] <= (n - buffer_frames) // feed.refill + 3


async def test_a_burst_of_events_reaches_the_peer_in_one_step_per_write(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The forwarder takes what queued while it wrote without another schedule point."""
    steps = Steps()
    transport = MemoryTransport()
    engines = Engines(ScriptedStt(), ScriptedPlanner(), ScriptedTts())
    async with open_session(SessionConfig(), engines, transport) as session:
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(steps)
        before = len(transport.events)
        steps.on = True
        for k in range(20):
            session.bus.emit(EventType.STATUS, text=f"burst {k}")
        await trio.testing.wait_all_tasks_blocked()
        steps.on = False
        burst = transport.events[before:]
        assert [e.data["text"] for e in burst] == [f"burst {k}" for k in range(20)]
        # each write is a checkpoint (a step each), plus the wake-up; 2 per event before
        assert sum(steps.steps.values()) <= 20 + 2
