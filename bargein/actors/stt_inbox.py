"""The front end → STT hop: a bounded FIFO whose items the STT handles in the run's shared step
while its task waits, when they need no wait.

Most of what the front end sends STT is a batch of frames every 100 ms: outside speech it only
goes into the pre-roll ring, and in speech it goes to a recognizer that may take audio
synchronously (`SyncFeed`). Waking the STT task for that costs more than the work (a cold task
step and a run-loop batch, 20-35 µs here, per session per batch). So while the STT task waits
with nothing queued, a new item is offered to `handle_nowait` in the shared step, deferred
after every front end's outbox (`SharedSteps.defer`: the floor has its messages of that instant
before STT's, as when the STT task ran after the shared step). The first item it declines
(an utterance to start or finish, audio for a recognizer that must be awaited) wakes the task,
which takes it and everything queued behind it, in order; a failure in the step is raised in
the STT task.

The sending side keeps a memory channel's contract where the mic relies on it: `send_nowait`
raises `trio.WouldBlock` when `capacity` items are queued, `send` waits for room, `close` (the
mic's end) lets the STT drain what is queued and then see `trio.EndOfChannel`; once the STT
let go (`close_receiver`), sends raise `trio.BrokenResourceError`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextvars import Context
from types import TracebackType

import trio

from bargein.runtime.shared_steps import shared_steps

from .vad import VadOutput


class SttInbox:
    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self._items: deque[VadOutput] = deque()
        self._room = trio.lowlevel.ParkingLot()  # senders waiting for room
        self._reader: trio.lowlevel.Task | None = None  # the STT task, while it waits
        self._context: Context | None = None
        self._handle: Callable[[VadOutput], bool] | None = None
        self._scheduled = False
        self._failure: Exception | None = None
        self.closed = False  # the sender's end
        self.receiver_closed = False
        self.handled_inline = 0  # items handled in the shared step (for tests)

    # -- the sender (the mic's front end) --------------------------------------------------------

    def send_nowait(self, item: VadOutput) -> None:
        if self.receiver_closed:
            raise trio.BrokenResourceError("STT has ended")
        if self.closed:
            raise trio.ClosedResourceError("the front end has ended")
        if len(self._items) >= self.capacity:
            raise trio.WouldBlock
        self._items.append(item)
        self._offer()

    async def send(self, item: VadOutput) -> None:
        await trio.lowlevel.checkpoint_if_cancelled()
        while True:
            try:
                self.send_nowait(item)
            except trio.WouldBlock:
                await self._room.park()
                continue
            break
        await trio.lowlevel.cancel_shielded_checkpoint()

    def close(self) -> None:
        self.closed = True
        self._offer()

    async def __aenter__(self) -> SttInbox:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- the receiver (the STT task) -------------------------------------------------------------

    def handle_inline(self, handle: Callable[[VadOutput], bool]) -> None:
        """While the receiving task waits, offer each new item to `handle(item)`, which either
        handles it whole without waiting (True) or leaves it untouched (False: the task is
        woken for it and everything behind it)."""
        self._handle = handle

    async def receive(self) -> VadOutput:
        """The next item not handled inline; one schedule point, as a channel's `receive`;
        `trio.EndOfChannel` once the sender closed and everything was taken."""
        await trio.lowlevel.checkpoint_if_cancelled()
        if self._items:
            item = self._take()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        while True:
            if self.closed and not self._items:
                raise trio.EndOfChannel
            task = trio.lowlevel.current_task()
            self._reader, self._context = task, task.context
            await trio.lowlevel.wait_task_rescheduled(self._abort)
            if self._failure is not None:
                failure, self._failure = self._failure, None
                raise failure
            if self._items:
                return self._take()

    def close_receiver(self) -> None:
        self.receiver_closed = True
        self._items.clear()
        self._room.unpark_all()

    def __aiter__(self) -> SttInbox:
        return self

    async def __anext__(self) -> VadOutput:
        try:
            return await self.receive()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None

    def __len__(self) -> int:
        return len(self._items)

    # -- inside ------------------------------------------------------------------------------

    def _take(self) -> VadOutput:
        item = self._items.popleft()
        self._room.unpark()
        return item

    def _offer(self) -> None:
        if self._reader is not None and not self._scheduled:
            self._scheduled = True
            shared_steps().defer(self._step)

    def _step(self) -> None:
        self._scheduled = False
        task = self._reader
        if task is None:  # the task took over, or is gone
            return
        wake = True
        try:
            assert self._context is not None
            wake = self._context.run(self._drain)
        except Exception as exc:  # raised in the STT task: it ends the session, not the run
            self._failure = exc
        if wake:
            self._reader = None
            trio.lowlevel.reschedule(task)

    def _drain(self) -> bool:
        """Handle queued items inline while they need no wait; True if the task must wake."""
        handle, items = self._handle, self._items
        while items:
            if handle is None or not handle(items[0]):
                return True
            items.popleft()
            self._room.unpark()
            self.handled_inline += 1
        return self.closed

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._reader = None
        return trio.lowlevel.Abort.SUCCEEDED
