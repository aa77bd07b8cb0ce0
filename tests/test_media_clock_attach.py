"""A session's egress stays attached to the shared media clock: the clock task lives between a
lone session's frames instead of ending after each wake-up and being spawned again for the next
frame (a task spawn per 20 ms frame), and it still ends once no egress is left."""

from __future__ import annotations

from collections import Counter

import numpy as np
import trio
import trio.testing

from bargein.actors.egress import AudioStarted, Egress
from bargein.runtime.bus import EventBus
from bargein.runtime.messages import OutFrame
from bargein.testing.memory import MemoryTransport
from tests.test_media_clock import clock_tasks


class Spawns(trio.abc.Instrument):
    def __init__(self) -> None:
        self.spawned: Counter[str] = Counter()

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned[task.name] += 1


async def test_a_lone_session_paces_a_turn_with_one_clock_task(
    autojump_clock: trio.testing.MockClock,
) -> None:
    spawns = Spawns()
    trio.lowlevel.add_instrument(spawns)
    transport = MemoryTransport()
    started_send, _started = trio.open_memory_channel[AudioStarted](10)
    egress = Egress(transport, EventBus("s", trio.current_time()), rate=16000, lead_ms=0,
                    buffer_frames=100, on_audio_started=started_send)
    n = 30
    async with trio.open_nursery() as nursery:
        await nursery.start(egress.run)
        for turn in (1, 2):  # and again after an idle gap between turns
            send, feed = egress.open_turn(turn)
            for k in range(n):
                send.send_nowait(OutFrame(turn, np.zeros(320, np.int16), 320 * k))
            send.close()
            await feed.done.wait()
            await trio.sleep(1.0)
        assert len(clock_tasks()) == 1  # still there for the next turn
        nursery.cancel_scope.cancel()
    assert len(transport.frames) == 2 * n
    assert spawns.spawned["bargein.media_clock"] == 1
    await trio.testing.wait_all_tasks_blocked()
    assert clock_tasks() == []  # no egress left: the clock task ended
