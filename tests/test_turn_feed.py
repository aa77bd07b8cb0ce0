"""The turn's frame buffer between TTS and egress (a deque, not a memory channel) keeps the
channel's contract where the turn relies on it: full, let go, closed, the end, a waiting reader
woken, a cancelled wait forgotten, and a full buffer refilled in steps."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors.turn_feed import FrameBuffer
from bargein.runtime.messages import OutFrame


def _frame(k: int) -> OutFrame:
    return OutFrame(1, np.full(320, k, np.int16), 320 * k)


async def test_full_let_go_and_closed_say_so() -> None:
    buf = FrameBuffer(2)
    buf.send_nowait(_frame(0))
    buf.send_nowait(_frame(1))
    with pytest.raises(trio.WouldBlock):
        buf.send_nowait(_frame(2))
    buf.release()  # egress is done with the turn: the writer must stop, not wait
    with pytest.raises(trio.BrokenResourceError):
        buf.send_nowait(_frame(2))
    closed = FrameBuffer(2)
    closed.close()
    with pytest.raises(trio.ClosedResourceError):
        closed.send_nowait(_frame(0))


async def test_the_reader_takes_what_is_left_then_sees_the_end() -> None:
    buf = FrameBuffer(4)
    buf.send_nowait(_frame(0))
    buf.close()
    assert not buf.ended
    assert (await buf.take()).start == 0
    assert buf.ended and buf.take_nowait() is None
    with pytest.raises(trio.EndOfChannel):
        await buf.take()


async def test_a_waiting_reader_is_woken_by_a_frame_and_by_the_end(
    autojump_clock: trio.testing.MockClock,
) -> None:
    buf = FrameBuffer(4)
    got: list[int | str] = []

    async def reader() -> None:
        while True:
            try:
                got.append((await buf.take()).start)
            except trio.EndOfChannel:
                got.append("end")
                return

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.sleep(1)
            buf.send_nowait(_frame(0))
            await trio.sleep(1)
            buf.close()
    assert got == [0, "end"]


async def test_a_cancelled_wait_is_forgotten(autojump_clock: trio.testing.MockClock) -> None:
    buf = FrameBuffer(4)
    with trio.move_on_after(1) as waited:
        await buf.take()
    assert waited.cancelled_caught
    buf.send_nowait(_frame(0))  # must not wake the task that stopped waiting
    await trio.sleep(1)
    frame = buf.take_nowait()
    assert frame is not None and frame.start == 0 and len(buf) == 0


async def test_a_full_buffer_is_refilled_after_refill_frames_or_on_release(
    autojump_clock: trio.testing.MockClock,
) -> None:
    buf = FrameBuffer(4, refill=2)
    for k in range(4):
        buf.send_nowait(_frame(k))
    woke: list[float] = []
    t0 = trio.current_time()

    async def writer() -> None:
        await buf.wait_room()
        woke.append(trio.current_time() - t0)
        await buf.wait_room()  # let go of: returns, and the next send raises
        woke.append(trio.current_time() - t0)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await trio.sleep(1)
            buf.take_nowait()
            await trio.sleep(1)
            assert woke == []  # one frame taken: not yet
            buf.take_nowait()
            await trio.sleep(1)
            assert woke == [pytest.approx(2)]
            buf.release()
    assert woke == [pytest.approx(2), pytest.approx(3)]
