"""Drop-oldest queues and broadcast: a producer that never waits, consumers that lose the
oldest (counted), and the once-per-second `input_dropped` report of a live ingress."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing

from bargein.engines.base import Engines
from bargein.runtime.broadcast import Broadcast, DropOldestQueue
from bargein.runtime.events import EventType
from bargein.session import SessionConfig, open_session
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts


def test_full_queue_drops_the_oldest_and_counts_it() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(3)
    assert [q.put_nowait(i) for i in range(5)] == [True, True, True, False, False]
    assert q.dropped == 2 and len(q) == 3
    assert list(q._items) == [2, 3, 4]  # the newest are kept
    with pytest.raises(ValueError):
        DropOldestQueue(0)


async def test_queue_drains_in_order_then_ends_once_closed() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(2)
    for i in range(4):
        q.put_nowait(i)
    q.close()
    with pytest.raises(trio.ClosedResourceError):
        q.put_nowait(9)
    assert [i async for i in q] == [2, 3]


async def test_queue_get_waits_for_a_put() -> None:
    q: DropOldestQueue[str] = DropOldestQueue(1)
    got: list[str] = []

    async def consumer() -> None:
        got.append(await q.get())

    async with trio.open_nursery() as n:
        n.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        q.put_nowait("x")
    assert got == ["x"]


async def test_broadcast_slow_subscriber_loses_its_oldest_others_keep_all() -> None:
    b: Broadcast[int] = Broadcast()
    seen: list[int] = []
    b.add_listener(seen.append)
    slow, fast = b.subscribe(2), b.subscribe(100)
    for i in range(5):
        b.publish(i)
    assert seen == [0, 1, 2, 3, 4]  # listeners are called inline, never skipped
    assert slow.dropped == 3 and fast.dropped == 0
    b.close()
    assert [i async for i in slow] == [3, 4]
    assert [i async for i in fast] == [0, 1, 2, 3, 4]
    b.publish(5)  # after close: nobody is left to receive it, and it does not raise
    assert seen == [0, 1, 2, 3, 4]


def test_leaving_a_subscription_stops_delivery() -> None:
    b: Broadcast[int] = Broadcast()
    with b.subscribe() as sub:
        b.publish(1)
    b.publish(2)
    assert list(sub._items) == [1]


async def test_input_dropped_is_reported_at_most_once_per_second_and_again_later(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    config = SessionConfig(ingress_chunks=5)
    eng = Engines(ScriptedStt(), ScriptedPlanner(), ScriptedTts())
    async with open_session(config, eng, transport) as session:
        chunk = np.zeros(16, np.int16)  # 1 ms: well within the rate limit
        for burst_at in (0.0, 0.3, 1.2, 1.5, 2.6):
            await trio.sleep_until(session.bus.t0 + burst_at)
            for _ in range(10):  # no checkpoint: the mic cannot drain in between
                session.push_audio(chunk)
    dropped = transport.of_type(EventType.INPUT_DROPPED)
    assert [round(e.t, 1) for e in dropped] == [0.0, 1.2, 2.6]
    # Each report comes at the first drop of its second and counts every drop so far.
    assert [e.data["dropped_total"] for e in dropped] == [1, 11, 21]
    assert session.stats()["ingress_dropped"] == 25


async def test_audio_faster_than_real_time_is_limited_and_counted(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    config = SessionConfig(ingress_burst_ms=1000, ingress_chunks=1000)
    eng = Engines(ScriptedStt(), ScriptedPlanner(), ScriptedTts())
    async with open_session(config, eng, transport) as session:
        chunk = np.zeros(320, np.int16)  # 20 ms
        for _ in range(100):  # 2 s of audio at once: the burst takes 1 s of it
            session.push_audio(chunk)
        assert session.stats()["rejected"] == {"rate_limited": 50}
        await trio.sleep(0.5)  # real time refills 0.5 s
        for _ in range(30):
            session.push_audio(chunk)
        assert session.stats()["rejected"] == {"rate_limited": 55}
    limited = [e for e in transport.of_type(EventType.INPUT_REJECTED)]
    assert [e.data["code"] for e in limited] == ["rate_limited"]  # one report per second
    assert transport.of_type(EventType.SESSION_ENDED)[0].data["rejected"] == {"rate_limited": 55}


async def test_get_is_exactly_one_schedule_point_whether_it_waits_or_not() -> None:
    q: DropOldestQueue[int] = DropOldestQueue(4)
    q.put_nowait(1)
    with trio.CancelScope() as scope:  # an item is there, and `get` is still a checkpoint
        scope.cancel()
        await q.get()
    assert scope.cancelled_caught and len(q) == 1  # the item stays for the next get

    steps: list[trio.lowlevel.Task] = []

    class Steps(trio.abc.Instrument):
        def before_task_step(self, task: trio.lowlevel.Task) -> None:
            steps.append(task)

    got: list[int] = []

    async def consumer() -> None:
        async for item in q:
            got.append(item)

    assert await q.get() == 1
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.add_instrument(Steps())
        for i in range(10):
            q.put_nowait(i)  # wakes the parked consumer, which takes it in the same step
            await trio.testing.wait_all_tasks_blocked()
        q.close()
    assert got == list(range(10))
    consumer_task = next(t for t in steps if t.name.endswith("consumer"))
    assert steps.count(consumer_task) <= 11  # one per item (and one to see the end), not two
