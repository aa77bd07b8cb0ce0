"""One task per trio run that runs ready actors' synchronous steps: one task step per wake-up
for every session whose input arrived in that instant, instead of a task step per session.

A live session's mic task was woken by every 20 ms chunk only to run a few microseconds of
synchronous work (framing, level, VAD); waking it costs about as much as the work. An actor that
can do its part synchronously registers a step here while it has nothing to wait for, and its
producer calls `schedule(step)` where it would have woken the actor's task. The actor's own task
stays in its session's nursery (its lifetime, its cancellation, its error reporting) and takes
over whenever its step cannot finish synchronously (a full channel downstream, the end of input,
a failure): the step says so by waking that task.

A step must never raise (it runs in a system task, where an exception would end the whole run):
it catches its own failures and hands them to its task. Like `media_clock`, the task runs only
while some actor uses it (`attach` / `detach`), so an idle process keeps no task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

log = logging.getLogger(__name__)

Step = Callable[[], None]


class SharedSteps:
    def __init__(self) -> None:
        self._ready: list[Step] = []
        self._late: list[Step] = []  # deferred: run after this pass's steps, in the same step
        self._waiter: trio.lowlevel.Task | None = None
        self._running = False
        self._users = 0
        self.wakeups = 0  # times the task woke to run steps (for benchmarks and tests)

    def attach(self) -> None:
        """An actor will schedule steps: the task starts, if it is not running."""
        self._users += 1
        if not self._running:
            self._running = True
            trio.lowlevel.spawn_system_task(self._run, name="bargein.shared_steps")

    def detach(self) -> None:
        """An actor is done scheduling steps; with the last one gone, the task ends."""
        self._users -= 1
        if not self._users:
            self._wake()

    def schedule(self, step: Step) -> None:
        """Run `step` once, soon, in this run's shared task (synchronous: never blocks). A step
        scheduled twice before it runs, runs twice: callers keep a flag if that matters. Only
        between `attach` and `detach`."""
        self._ready.append(step)
        self._wake()

    def defer(self, step: Step) -> None:
        """Like `schedule`, but `step` runs after every step already scheduled in this pass,
        in the same task step: a consumer of what those steps deliver (STT after every front
        end's outbox) then sees them all, in the order a task woken by them would, without a
        schedule point of its own. A step deferred by a deferred step runs in the next pass."""
        self._late.append(step)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)

    async def _run(self) -> None:
        while True:
            if not self._ready and not self._late:
                if not self._users:
                    self._running = False
                    return
                self._waiter = trio.lowlevel.current_task()
                try:
                    await trio.lowlevel.wait_task_rescheduled(self._abort)
                except trio.Cancelled:  # the run is ending: the system nursery absorbs it
                    self._running = False
                    raise
                continue
            ready, self._ready = self._ready, []
            self.wakeups += 1
            self._run_all(ready)
            late, self._late = self._late, []
            self._run_all(late)
            if self._ready or self._late:  # scheduled by these steps: after a schedule point
                await trio.lowlevel.cancel_shielded_checkpoint()

    @staticmethod
    def _run_all(steps: list[Step]) -> None:
        for step in steps:
            try:
                step()
            except Exception:  # a broken step must not end the run (steps catch their own)
                log.exception("shared step %r failed", step)

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED


_steps: trio.lowlevel.RunVar[SharedSteps] = trio.lowlevel.RunVar("bargein_shared_steps")


def shared_steps() -> SharedSteps:
    """This trio run's shared step runner."""
    try:
        return _steps.get()
    except LookupError:
        steps = SharedSteps()
        _steps.set(steps)
        return steps
