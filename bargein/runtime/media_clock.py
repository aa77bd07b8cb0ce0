"""One media clock per trio run: every session's egress paces on it instead of a timer each.

A trio timer is a cancel scope with a deadline, and its expiry raises and catches `Cancelled`
in the sleeping task: tens of microseconds per 20 ms frame per session. Here a sleeper is a heap
entry and a parked task; one clock task sleeps until the earliest deadline and, each time it
wakes, reschedules every sleeper whose deadline has passed by then — one timer expiry for all
the frames due in that instant, whatever the number of sessions.

`sleep_until` keeps `trio.sleep_until`'s contract: it never returns before its deadline (by
`trio.current_time()`), it is a checkpoint, and it can be cancelled. On a virtual clock
(`autojump_clock`) the clock task wakes exactly at each deadline, so tests see exact times.

`pace` goes one step further for work that is synchronous once its deadline has come (egress
sending a frame to a transport that takes it without waiting): the caller parks with a step,
and the clock task runs the step itself each time its deadline passes, in the wake-up that
serves every other sleeper due then — no task step of the caller per frame. The caller's task
is woken only when the step hands back (it returns None: something it cannot do synchronously)
or fails (the exception is raised in the caller's task, never in the clock's).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable

import outcome
import trio

# A paced step: called with the clock's time once its deadline has passed; returns its next
# deadline, or None to wake its task (which then carries on where the step left off).
PacedStep = Callable[[float], float | None]


class _Sleeper:
    __slots__ = ("step", "task")

    def __init__(self, task: trio.lowlevel.Task, step: PacedStep | None = None) -> None:
        self.task: trio.lowlevel.Task | None = task  # None once it has gone (cancelled)
        self.step = step


class MediaClock:
    def __init__(self) -> None:
        self._heap: list[tuple[float, int, _Sleeper]] = []
        self._seq = itertools.count()
        self._earlier = trio.lowlevel.ParkingLot()  # the clock task waits here for new work
        self._live = 0  # sleepers not yet woken or cancelled
        self._running = False
        self._users = 0  # pacers attached: the clock task stays while there are any
        self.wakeups = 0  # times the clock task woke sleepers (for benchmarks)

    def attach(self) -> None:
        """A pacer (a session's egress) will sleep here again and again: the clock task stays
        between its sleeps instead of ending and being spawned again for the next frame."""
        self._users += 1
        self._start()

    def detach(self) -> None:
        self._users -= 1
        if not self._users and not self._live:
            self._earlier.unpark_all()  # nobody left: the clock task ends

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= trio.current_time():
            await trio.lowlevel.checkpoint()
            return
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._park(deadline, _Sleeper(trio.lowlevel.current_task()))

    async def pace(self, deadline: float, step: PacedStep) -> None:
        """Park until `step` hands back: from `deadline` on, the clock task calls `step(now)`
        each time the deadline it returned has passed (never before it), until it returns None.
        A checkpoint, cancellable (the step is then never called again); an exception from the
        step is raised here."""
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._park(deadline, _Sleeper(trio.lowlevel.current_task(), step))

    async def _park(self, deadline: float, sleeper: _Sleeper) -> None:
        heapq.heappush(self._heap, (float(deadline), next(self._seq), sleeper))
        self._live += 1
        if not self._running:
            self._start()
        elif self._heap[0][2] is sleeper:
            self._earlier.unpark_all()  # the clock task must now wake sooner

        def abort(_: object) -> trio.lowlevel.Abort:
            sleeper.task = None
            self._live -= 1
            if not self._live:
                self._earlier.unpark_all()  # nobody left: the clock task ends
            return trio.lowlevel.Abort.SUCCEEDED

        await trio.lowlevel.wait_task_rescheduled(abort)

    def _start(self) -> None:
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="bargein.media_clock")

    async def _run(self) -> None:
        """The clock task: alive while anyone sleeps or is attached, so an idle process keeps
        no task."""
        heap = self._heap
        while True:
            while heap and heap[0][2].task is None:
                heapq.heappop(heap)
            if not self._live:
                heap.clear()
                if not self._users:
                    self._running = False
                    return
                await self._earlier.park()  # idle between the attached pacers' sleeps
                continue
            with trio.move_on_at(heap[0][0]):
                await self._earlier.park()  # or a sooner deadline arrived: look again
            now = trio.current_time()
            woke = False
            while heap and heap[0][0] <= now:
                sleeper = heapq.heappop(heap)[2]
                task = sleeper.task
                if task is None:
                    continue
                woke = True
                result: outcome.Outcome[None] = outcome.Value(None)
                if sleeper.step is not None:
                    try:
                        later = sleeper.step(now)
                    except Exception as exc:  # the step's failure is its task's, not the clock's
                        later, result = None, outcome.Error(exc)
                    if later is not None:
                        heapq.heappush(heap, (later, next(self._seq), sleeper))
                        continue
                sleeper.task = None
                self._live -= 1
                trio.lowlevel.reschedule(task, result)
            self.wakeups += woke


_clock: trio.lowlevel.RunVar[MediaClock] = trio.lowlevel.RunVar("bargein_media_clock")


def media_clock() -> MediaClock:
    """This trio run's media clock. Its task (a system task) runs only while someone sleeps
    or is attached."""
    try:
        return _clock.get()
    except LookupError:
        clock = MediaClock()
        _clock.set(clock)
        return clock
