"""Fan-out without backpressure: one publisher, many consumers that must never slow it down.

Two kinds of consumer: sync listeners (called inline; for cheap work such as a trace file or a
metrics counter) and subscriptions (a bounded drop-oldest queue each, read by their own task).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Generic, TypeVar

import trio

T = TypeVar("T")


async def next_item(
    items: deque[T], lot: trio.lowlevel.ParkingLot, closed: Callable[[], bool]
) -> T:
    """The single consumer's wait on a deque that producers fill and `lot.unpark()`: pop the
    oldest item, parking until there is one; `trio.EndOfChannel` once closed and drained.

    Exactly one schedule point either way, like a memory channel's `receive`: a consumer woken
    from the lot takes its item in that same step (a second checkpoint after the wake-up
    would cost a task step per item and buy nothing).
    """
    await trio.lowlevel.checkpoint_if_cancelled()
    if items:
        item = items.popleft()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return item
    while not items:
        if closed():
            raise trio.EndOfChannel
        await lot.park()
    return items.popleft()


class DropOldestQueue(Generic[T]):
    """A bounded single-consumer queue whose `put_nowait` never blocks: when full, the oldest item
    is dropped and counted. Used where a producer must not wait (live audio ingress, events).

    The consumer waits in a slot of its own rather than a `ParkingLot`: a live session's mic
    task is woken by every 20 ms chunk, and the lot's bookkeeping per wake-up cost more than
    the wake-up itself. A second task waiting at the same time is a misuse and raises
    `trio.BusyResourceError`.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        self.dropped = 0
        self._items: deque[T] = deque()
        self._waiter: trio.lowlevel.Task | None = None
        self._hook: Callable[[], None] | None = None
        self._closed = False

    def on_put(self, hook: Callable[[], None] | None) -> None:
        """While set, `put_nowait` and `close` call `hook()` where they would wake a consumer
        waiting in `get`: a consumer that takes its items synchronously elsewhere (a shared
        step, `runtime.shared_steps`) is told without a task of its own being woken."""
        self._hook = hook

    def put_nowait(self, item: T) -> bool:
        """Queue `item`; return False if an older item had to be dropped to make room."""
        if self._closed:
            raise trio.ClosedResourceError("queue is closed")
        items = self._items
        kept = True
        if len(items) >= self.capacity:
            items.popleft()
            self.dropped += 1
            kept = False
        items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)
        elif self._hook is not None:
            self._hook()
        return kept

    async def get(self) -> T:
        """Next item; raises `trio.EndOfChannel` once closed and drained.

        Exactly one schedule point either way, like a memory channel's `receive` (see
        `next_item`)."""
        await trio.lowlevel.checkpoint_if_cancelled()
        items = self._items
        if items:
            item = items.popleft()
            await trio.lowlevel.cancel_shielded_checkpoint()
            return item
        while not items:
            if self._closed:
                raise trio.EndOfChannel
            if self._waiter is not None:
                raise trio.BusyResourceError("another task is already waiting on this queue")
            self._waiter = trio.lowlevel.current_task()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
        return items.popleft()

    def get_nowait(self) -> T:
        """The oldest item without waiting (no schedule point): for a consumer that has just
        been through one, e.g. a write to its peer. `trio.WouldBlock` if there is none now,
        `trio.EndOfChannel` once closed and drained."""
        if self._items:
            return self._items.popleft()
        if self._closed:
            raise trio.EndOfChannel
        raise trio.WouldBlock

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._waiter = None
        return trio.lowlevel.Abort.SUCCEEDED

    def close(self) -> None:
        """No more puts; the consumer drains what is queued and then sees `EndOfChannel`."""
        self._closed = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            trio.lowlevel.reschedule(waiter)
        elif self._hook is not None:
            self._hook()

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        return len(self._items)

    def __aiter__(self) -> DropOldestQueue[T]:
        return self

    async def __anext__(self) -> T:
        try:
            return await self.get()
        except trio.EndOfChannel:
            raise StopAsyncIteration from None


class Subscription(DropOldestQueue[T]):
    """A consumer's view of a `Broadcast`; leave it with `close()` or `with`."""

    def __init__(self, owner: Broadcast[T], capacity: int) -> None:
        super().__init__(capacity)
        self._owner = owner

    def close(self) -> None:
        self._owner._subscriptions.discard(self)
        super().close()

    def __enter__(self) -> Subscription[T]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Broadcast(Generic[T]):
    def __init__(self) -> None:
        self._subscriptions: set[Subscription[T]] = set()
        self._listeners: list[Callable[[T], None]] = []

    def publish(self, item: T) -> None:
        for listener in self._listeners:
            listener(item)
        for sub in self._subscriptions:
            sub.put_nowait(item)

    def subscribe(self, capacity: int = 1024) -> Subscription[T]:
        sub = Subscription(self, capacity)
        self._subscriptions.add(sub)
        return sub

    def add_listener(self, listener: Callable[[T], None]) -> None:
        self._listeners.append(listener)

    def close(self) -> None:
        """End every subscription (each drains what it holds, then ends)."""
        for sub in list(self._subscriptions):
            sub.close()
        self._listeners.clear()
