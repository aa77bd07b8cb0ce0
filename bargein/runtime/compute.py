"""Where CPU-heavy engine work runs, and how its time is accounted.

Two modes, chosen per session and read by `run_cpu` from a context variable that the session sets
(and, for engines whose C code holds the GIL, optional worker processes: see below):

- ``thread`` (real clock): the call runs in a worker thread under a process-wide capacity limit,
  so recognition and synthesis never stall other sessions' audio on the event loop.
- ``inline`` (virtual clock): the call runs on the loop, its measured CPU time (at most its wall
  time) is then charged to the session clock with ``trio.sleep``. Under an autojump clock a
  worker thread would make compute free (time jumps while every task waits for the thread);
  charging keeps latencies honest.
"""

from __future__ import annotations

import contextvars
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import trio

T = TypeVar("T")
ComputeMode = Literal["thread", "inline"]

_mode: contextvars.ContextVar[ComputeMode] = contextvars.ContextVar(
    "bargein_compute_mode", default="thread"
)
_limiter: trio.CapacityLimiter | None = None


def cpu_limiter() -> trio.CapacityLimiter:
    """The process-wide limit on concurrent engine computations (one per core by default)."""
    global _limiter
    if _limiter is None:
        import os

        _limiter = trio.CapacityLimiter(max(1, os.cpu_count() or 1))
    return _limiter


def set_compute_mode(mode: ComputeMode) -> contextvars.Token[ComputeMode]:
    return _mode.set(mode)


def compute_mode() -> ComputeMode:
    return _mode.get()


async def run_cpu(fn: Callable[..., T], *args: object) -> T:
    """Run ``fn(*args)`` as engine compute according to the current session's mode."""
    if _mode.get() == "inline":
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn(*args)
        # Charged: the CPU time it used (in any thread: some engines compute in their own), at
        # most its wall time (work split across threads is not charged twice). Wall time alone
        # also counts the time other processes held the cores: runs differed with the load.
        await trio.sleep(min(time.perf_counter() - wall, time.process_time() - cpu))
        return result
    return await trio.to_thread.run_sync(fn, *args, limiter=cpu_limiter(), abandon_on_cancel=False)


# -- worker processes ------------------------------------------------------------------------
#
# Engines whose C code holds the GIL (pocketsphinx: measured, two decoding threads share one
# core) cannot use a second core from threads. Worker processes can, but their state lives in
# the worker: a caller pins one worker for as long as its state is needed (a decoder for one
# utterance) and sends it calls of module-level functions, which keep that state in worker-side
# globals. Off by default; `set_worker_processes(n)` (or $BARGEIN_ENGINE_PROCESSES) turns it on
# for the process, and only the real clock ("thread" mode) uses it.

_worker_count: int | None = None
_workers: list[CpuWorker] = []


def set_worker_processes(count: int) -> None:
    """Use ``count`` worker processes for engines that support them (0: none, the default)."""
    global _worker_count
    if count < 0:
        raise ValueError("count must be >= 0")
    _worker_count = count


def worker_processes() -> int:
    global _worker_count
    if _worker_count is None:
        import os

        _worker_count = int(os.environ.get("BARGEIN_ENGINE_PROCESSES", "0") or 0)
    return _worker_count


def serve_fd(fd: int) -> None:
    """The worker process's entry point (see `CpuWorker`)."""
    from multiprocessing.connection import Connection

    _serve_worker(Connection(fd))


def _serve_worker(conn: Any) -> None:
    """The worker's loop: call what the parent sends, send back the result or the exception."""
    while True:
        try:
            fn, args = conn.recv()
        except EOFError:
            return
        try:
            conn.send((True, fn(*args)))
        except Exception as exc:  # the caller re-raises it: engine errors cross the pipe
            conn.send((False, exc))


class _Reply:
    __slots__ = ("done", "ok", "value")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = False
        self.value: Any = None


class CpuWorker:
    """One worker process. Calls are pipelined: each caller writes its request at once and
    waits for its own reply, which one reader task takes off the pipe in order (the worker
    answers in the order it was asked), so the worker always has the next request queued
    instead of idling while the parent's busy loop gets round to sending it."""

    def __init__(self) -> None:
        import socket
        import subprocess
        import sys
        from multiprocessing.connection import Connection

        # A plain child interpreter on one end of a socket pair, not multiprocessing's "spawn"
        # (which re-runs the parent's __main__ in the child) nor fork (threads, trio state).
        parent, child = socket.socketpair()
        code = f"from bargein.runtime.compute import serve_fd; serve_fd({child.fileno()})"
        self._process = subprocess.Popen(
            [sys.executable, "-c", code], pass_fds=(child.fileno(),), stdin=subprocess.DEVNULL
        )
        child.close()
        self._conn = Connection(parent.detach())
        self._waiting: deque[_Reply] = deque()  # replies not yet read, in request order
        self._reading = False
        self.pinned = 0  # callers holding state in this worker
        self.max_in_flight = 0  # most requests at once (for tests and benchmarks)

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the worker. The wait for the reply is shielded: a caller must take
        its own reply, or the replies would fall out of step with the requests. Calls are short
        (one 100 ms feed costs ~16 ms; loading a decoder ~0.3 s), so the shield is bounded by
        the engine's own work. The request is written synchronously: at most one request per
        caller is in flight (a few KiB), far below the socket pair's buffer."""
        reply = _Reply()
        with trio.CancelScope(shield=True):
            self._conn.send((fn, args))
            self._waiting.append(reply)
            self.max_in_flight = max(self.max_in_flight, len(self._waiting))
            if not self._reading:
                self._reading = True
                trio.lowlevel.spawn_system_task(self._read_replies, name="bargein.cpu_worker")
            await reply.done.wait()
        await trio.lowlevel.checkpoint_if_cancelled()
        if not reply.ok:
            raise reply.value
        return reply.value  # type: ignore[no-any-return]

    async def _read_replies(self) -> None:
        """Hand each reply to its caller, while any is awaited (a system task: it must never
        raise; a dead worker fails every waiting call instead)."""
        try:
            while self._waiting:
                try:
                    while not self._conn.poll():
                        await trio.lowlevel.wait_readable(self._conn.fileno())
                    ok, value = self._conn.recv()
                except (EOFError, OSError) as exc:
                    died = RuntimeError("engine worker process died")
                    died.__cause__ = exc
                    while self._waiting:
                        reply = self._waiting.popleft()
                        reply.value = died
                        reply.done.set()
                    return
                reply = self._waiting.popleft()
                reply.ok, reply.value = ok, value
                reply.done.set()
        finally:
            self._reading = False

    def close(self) -> None:
        self._conn.close()  # the worker sees EOF and exits
        try:
            self._process.wait(timeout=1)
        except Exception:
            self._process.kill()


async def pin_worker() -> CpuWorker | None:
    """The least-loaded worker process (started on first use, in a thread), pinned to the
    caller until `unpin`; None when worker processes are off or this is a virtual-clock run."""
    workers = await started_workers()
    if not workers:
        return None
    worker = min(workers, key=lambda w: w.pinned)
    worker.pinned += 1
    return worker


async def started_workers() -> list[CpuWorker]:
    """Every worker process, started now if not yet (empty when they are off or this is a
    virtual-clock run): for engines that load state into each worker ahead of use."""
    count = worker_processes()
    if count == 0 or _mode.get() != "thread":
        return []
    while len(_workers) < count:
        started = await trio.to_thread.run_sync(CpuWorker)  # ~0.1 s: spawn and import
        if len(_workers) < count:
            _workers.append(started)
        else:  # another caller started one meanwhile
            started.close()
    return list(_workers)


def unpin(worker: CpuWorker) -> None:
    worker.pinned -= 1


def close_workers() -> None:
    """Stop the worker processes (they also exit on their own when this process ends)."""
    while _workers:
        _workers.pop().close()
