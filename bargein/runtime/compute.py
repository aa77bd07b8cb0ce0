"""Where CPU-heavy engine work runs, and how its time is accounted.

Two modes, chosen per session and read by `run_cpu` from a context variable that the session sets
(and, for engines whose C code holds the GIL, optional worker processes: see below):

- ``thread`` (real clock): the call runs in a worker thread under a process-wide capacity limit,
  so recognition and synthesis never stall other sessions' audio on the event loop.
- ``inline`` (virtual clock): the call runs on the loop, its measured wall time is then charged to
  the session clock with ``trio.sleep``. Under an autojump clock a worker thread would make compute
  free (time jumps while every task waits for the thread); charging keeps latencies honest.
"""

from __future__ import annotations

import contextvars
import time
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
        started = time.perf_counter()
        result = fn(*args)
        await trio.sleep(time.perf_counter() - started)
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


class CpuWorker:
    """One worker process; one call at a time (a trio lock), in the caller's task."""

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
        self._lock = trio.Lock()
        self.pinned = 0  # callers holding state in this worker

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """``fn(*args)`` in the worker. The round trip is shielded: a reply left in the pipe by
        a cancelled caller would be read by the next one. Calls are short (one 20 ms feed costs
        ~3 ms; loading a decoder ~0.3 s), so the shield is bounded by the engine's own work."""
        async with self._lock:
            with trio.CancelScope(shield=True):
                self._conn.send((fn, args))
                while not self._conn.poll():
                    await trio.lowlevel.wait_readable(self._conn.fileno())
                try:
                    ok, value = self._conn.recv()
                except EOFError as exc:
                    raise RuntimeError("engine worker process died") from exc
        await trio.lowlevel.checkpoint_if_cancelled()
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def close(self) -> None:
        self._conn.close()  # the worker sees EOF and exits
        try:
            self._process.wait(timeout=1)
        except Exception:
            self._process.kill()


async def pin_worker() -> CpuWorker | None:
    """The least-loaded worker process (started on first use, in a thread), pinned to the
    caller until `unpin`; None when worker processes are off or this is a virtual-clock run."""
    count = worker_processes()
    if count == 0 or _mode.get() != "thread":
        return None
    while len(_workers) < count:
        started = await trio.to_thread.run_sync(CpuWorker)  # ~0.1 s: spawn and import
        if len(_workers) < count:
            _workers.append(started)
        else:  # another caller started one meanwhile
            started.close()
    worker = min(_workers, key=lambda w: w.pinned)
    worker.pinned += 1
    return worker


def unpin(worker: CpuWorker) -> None:
    worker.pinned -= 1


def close_workers() -> None:
    """Stop the worker processes (they also exit on their own when this process ends)."""
    while _workers:
        _workers.pop().close()
