"""On the virtual clock (`compute="inline"`) an engine call is charged the CPU time it used, at
most its wall time: wall time alone also counts the time other processes held the cores, so two
runs of one recording differed with the machine's load (test_run_file's determinism test failed
under load: a barge-in later by the neighbours' share of the CPU, one more word heard)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import trio
import trio.testing

from bargein.runtime.compute import run_cpu, set_compute_mode


def burn(cpu_s: float) -> None:
    """Use `cpu_s` of this thread's CPU time."""
    end = time.thread_time() + cpu_s
    while time.thread_time() < end:
        pass


async def charged(fn: Callable[[], None]) -> float:
    set_compute_mode("inline")
    try:
        start = trio.current_time()
        await run_cpu(fn)
        return trio.current_time() - start
    finally:
        set_compute_mode("thread")


async def test_time_the_call_was_not_computing_is_not_charged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # A call off the CPU for 0.2 s (as when other processes hold every core) and on it 0.02 s.
    def descheduled() -> None:
        time.sleep(0.2)
        burn(0.02)

    charge = await charged(descheduled)
    assert 0.02 <= charge < 0.1


async def test_compute_in_the_engines_own_threads_is_charged(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Engines such as CTranslate2 compute in their own threads while the caller waits.
    def in_a_thread() -> None:
        worker = threading.Thread(target=burn, args=(0.05,))
        worker.start()
        worker.join()

    assert await charged(in_a_thread) >= 0.05
