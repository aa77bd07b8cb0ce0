"""Where CPU-heavy engine work runs, and how its time is accounted.

Two modes, chosen per session and read by `run_cpu` from a context variable that the session sets:

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
from typing import Literal, TypeVar

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
