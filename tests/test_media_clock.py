"""The shared media clock keeps `trio.sleep_until`'s contract: never early, exact on a virtual
clock, a checkpoint, cancellable; one clock task wakes every sleeper due at the same instant,
and it is gone once nobody sleeps."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bargein.runtime.media_clock import media_clock


def clock_tasks() -> list[trio.lowlevel.Task]:
    root = trio.lowlevel.current_root_task()
    assert root is not None
    return [
        t for nursery in root.child_nurseries for t in nursery.child_tasks
        if t.name == "bargein.media_clock"
    ]


async def test_sleepers_wake_exactly_at_their_deadlines_in_order(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = media_clock()
    woke: list[tuple[str, float]] = []
    t0 = trio.current_time()

    async def sleeper(name: str, at: float) -> None:
        await clock.sleep_until(t0 + at)
        woke.append((name, trio.current_time() - t0))

    async with trio.open_nursery() as nursery:
        for name, at in (("c", 0.06), ("a", 0.02), ("b", 0.025), ("a2", 0.02)):
            nursery.start_soon(sleeper, name, at)
    assert sorted(woke, key=lambda w: w[1]) == woke
    assert {n: t for n, t in woke} == pytest.approx({"a": 0.02, "a2": 0.02, "b": 0.025, "c": 0.06})
    assert all(t >= at for (_, t), at in zip(woke, (0.02, 0.02, 0.025, 0.06), strict=True))


async def test_sleepers_due_together_share_one_wake_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = media_clock()
    deadline = trio.current_time() + 0.02
    before = clock.wakeups
    async with trio.open_nursery() as nursery:
        for _ in range(100):
            nursery.start_soon(clock.sleep_until, deadline)
    assert clock.wakeups - before == 1


async def test_a_sooner_sleeper_is_not_held_by_a_later_one(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = media_clock()
    t0 = trio.current_time()
    woke: list[float] = []

    async def late() -> None:
        await clock.sleep_until(t0 + 1.0)

    async def soon() -> None:
        await trio.testing.wait_all_tasks_blocked()  # `late` holds the clock first
        await clock.sleep_until(t0 + 0.02)
        woke.append(trio.current_time() - t0)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(late)
        nursery.start_soon(soon)
    assert woke == [pytest.approx(0.02)]


async def test_cancelled_sleeper_leaves_and_the_clock_task_ends(
    autojump_clock: trio.testing.MockClock,
) -> None:
    clock = media_clock()
    with trio.move_on_after(0.01) as scope:
        await clock.sleep_until(trio.current_time() + 10)
    assert scope.cancelled_caught
    await trio.testing.wait_all_tasks_blocked()
    assert clock_tasks() == []
    # A past deadline returns at once but is still a checkpoint (cancellation is seen).
    with trio.CancelScope() as cancelled:
        cancelled.cancel()
        await clock.sleep_until(trio.current_time() - 1)
    assert cancelled.cancelled_caught
    await clock.sleep_until(trio.current_time() + 0.5)  # the clock starts again on demand
    await trio.testing.wait_all_tasks_blocked()
    assert clock_tasks() == []
