"""Egress paced synchronously by the media clock's wake-up (`send_audio_nowait`): the frames
go out at the same times, with the same echo-reference taps and the same clear, as through
`send_audio` from egress's own task; an interrupt still cuts the turn within a frame; a transport
without `send_audio_nowait`, or one that refuses a frame, still gets every frame; a transport
that fails ends only its own egress, and the clock goes on for the others."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors.egress import AudioStarted, Egress
from bargein.runtime.bus import EventBus
from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame
from bargein.testing.memory import MemoryTransport
from tests.test_media_clock import clock_tasks

FRAME = 320  # 20 ms at 16 kHz


class AsyncOnly(MemoryTransport):
    """Overrides `send_audio`, so it has no `send_audio_nowait`: every frame by `send_audio`."""

    async def send_audio(self, frame: OutFrame) -> None:
        await super().send_audio(frame)


class Refusing(MemoryTransport):
    """Takes a frame without waiting only while not `full`; `send_audio` waits for room."""

    def __init__(self) -> None:
        super().__init__()
        self.full = False
        self.room = trio.Event()
        self.refused = 0

    def send_audio_nowait(self, frame: OutFrame) -> bool:
        if self.full:
            self.refused += 1
            return False
        return MemoryTransport.send_audio_nowait(self, frame)

    async def send_audio(self, frame: OutFrame) -> None:
        if self.full:
            await self.room.wait()
        await super().send_audio(frame)


class Failing(MemoryTransport):
    def __init__(self, after: int) -> None:
        super().__init__()
        self.after = after

    def send_audio_nowait(self, frame: OutFrame) -> bool:
        if len(self.frames) >= self.after:
            raise RuntimeError("the peer's queue broke")
        return MemoryTransport.send_audio_nowait(self, frame)


class EgressSteps(trio.abc.Instrument):
    def __init__(self) -> None:
        self.steps: Counter[str] = Counter()

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name.rsplit(".", 1)[-1]] += 1


def frame(turn: int, k: int) -> OutFrame:
    return OutFrame(turn, np.full(FRAME, k + 1, np.int16), FRAME * k)


def make_egress(
    transport: MemoryTransport, taps: list[tuple[float, int]], events: list[Event],
    lead_ms: int = 0,
) -> Egress:
    bus = EventBus("s", trio.current_time())
    bus.add_listener(events.append)
    started_send, _started = trio.open_memory_channel[AudioStarted](100)
    return Egress(
        transport, bus, rate=16000, lead_ms=lead_ms, buffer_frames=100,
        on_audio_started=started_send,
        on_played=lambda pcm, at: taps.append((round(at, 9), int(pcm[0]))),
    )


async def play(
    transport: MemoryTransport, *, lead_ms: int = 0, interrupt_at: float | None = None,
    pause: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """One turn: 10 frames at once, an underrun of 0.3 s, 15 more; optionally a pause, or an
    interrupt at `interrupt_at` seconds after the start."""
    taps: list[tuple[float, int]] = []
    events: list[Event] = []
    egress = make_egress(transport, taps, events, lead_ms)
    t0 = trio.current_time()
    async with trio.open_nursery() as nursery:
        await nursery.start(egress.run)
        send, feed = egress.open_turn(1)

        async def write() -> None:
            for k in range(10):
                send.send_nowait(frame(1, k))
            await trio.sleep(0.5)
            for k in range(10, 25):
                send.send_nowait(frame(1, k))
            send.close()

        async def control() -> None:
            if pause is not None:
                await trio.sleep_until(t0 + pause[0])
                egress.pause(1)
                await trio.sleep_until(t0 + pause[1])
                egress.resume(1)
            if interrupt_at is not None:
                await trio.sleep_until(t0 + interrupt_at)
                assert egress.interrupt(1)

        nursery.start_soon(write)
        nursery.start_soon(control)
        await feed.done.wait()
        await trio.sleep(0.2)  # egress and the clock stay: nothing of the turn may follow
        nursery.cancel_scope.cancel()
    cleared = [e.data for e in events if e.type is EventType.OUTPUT_CLEARED]
    return {
        "sent": [(round(at - t0, 9), f.start) for at, f in transport.frames],
        "taps": [(round(at - t0, 9), first) for at, first in taps],
        "cleared": cleared,
        "clears": len(transport.clears),
        "frames_sent": egress.frames_sent,
    }


@pytest.mark.parametrize("lead_ms", [0, 60])
async def test_frames_go_out_at_the_same_times_as_through_send_audio(
    autojump_clock: trio.testing.MockClock, lead_ms: int,
) -> None:
    paced_steps, task_steps = EgressSteps(), EgressSteps()
    trio.lowlevel.add_instrument(paced_steps)
    paced = await play(MemoryTransport(), lead_ms=lead_ms)
    trio.lowlevel.remove_instrument(paced_steps)
    trio.lowlevel.add_instrument(task_steps)
    by_task = await play(AsyncOnly(), lead_ms=lead_ms)
    trio.lowlevel.remove_instrument(task_steps)
    assert paced == by_task
    lead = lead_ms / 1000
    # 10 frames from 0 on, the underrun, then a new timeline when the next frames arrive.
    expected = [round(max(0.0, 0.02 * k - lead), 9) for k in range(10)]
    expected += [round(0.5 + max(0.0, 0.02 * k - lead), 9) for k in range(15)]
    assert [at for at, _ in paced["sent"]] == expected
    assert paced["taps"] == [(round(0.02 * k, 9), k + 1) for k in range(10)] + [
        (round(0.5 + 0.02 * k, 9), k + 11) for k in range(15)
    ]
    # Paced from the clock's wake-up: egress's own task steps a few times per turn (its first
    # frame, the underrun, the end), not twice per frame.
    assert task_steps.steps["run"] >= 40  # about 2 per frame (the order of a batch varies)
    assert paced_steps.steps["run"] <= 12


async def test_a_pause_and_resume_keep_the_same_timeline(
    autojump_clock: trio.testing.MockClock,
) -> None:
    paced = await play(MemoryTransport(), pause=(0.65, 0.8))
    by_task = await play(AsyncOnly(), pause=(0.65, 0.8))
    assert paced == by_task
    assert len(paced["sent"]) == 25


@pytest.mark.parametrize("at", [0.09, 0.13, 0.61])
async def test_an_interrupt_cuts_the_turn_within_a_frame(
    autojump_clock: trio.testing.MockClock, at: float,
) -> None:
    paced = await play(MemoryTransport(), interrupt_at=at)
    by_task = await play(AsyncOnly(), interrupt_at=at)
    assert paced == by_task
    # No frame due after the interrupt went out; the one due at it did not either.
    assert paced["sent"] and all(t < at for t, _ in paced["sent"])
    assert max(t for t, _ in paced["sent"]) > at - 0.02
    assert paced["clears"] == 1
    assert paced["cleared"][0]["frames_dropped"] == by_task["cleared"][0]["frames_dropped"]


async def test_a_transport_that_refuses_gets_every_frame_by_send_audio(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = Refusing()

    async def fill_then_drain() -> None:
        await trio.sleep(0.07)
        transport.full = True
        await trio.sleep(0.1)
        transport.full = False
        transport.room.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(fill_then_drain)
        result = await play(transport)
    assert transport.refused >= 1
    assert [start for _, start in result["sent"]] == [FRAME * k for k in range(25)]
    assert result["frames_sent"] == 25


async def test_a_failing_transport_ends_only_its_egress(
    autojump_clock: trio.testing.MockClock,
) -> None:
    healthy: dict[str, Any] = {}
    failed: list[BaseException] = []

    async def failing() -> None:
        try:
            await play(Failing(after=4))
        except BaseException as exc:  # the nursery's group, from egress's task
            failed.append(exc)

    async def other() -> None:
        healthy.update(await play(MemoryTransport()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(failing)
        nursery.start_soon(other)
    assert len(failed) == 1
    assert isinstance(failed[0], BaseExceptionGroup)
    assert failed[0].subgroup(RuntimeError) is not None
    # The other turn played whole, on time, and the clock task survived the failure.
    assert len(healthy["sent"]) == 25
    assert healthy["sent"][-1][0] == round(0.5 + 0.02 * 14, 9)
    await trio.testing.wait_all_tasks_blocked()
    assert clock_tasks() == []  # and ended with the last egress
