"""`bench load`'s measure of contention (load_server.py): how long a process waited for a
core, from /proc/<pid>/schedstat (docs/capacity.md, `server_cpu_wait_pct_by_process`)."""

from __future__ import annotations

import os
import threading

from bargein.benchmarks.load_server import runqueue_wait_s, schedstat_wait_s


def test_wait_grows_when_two_busy_threads_share_one_core() -> None:
    if not os.path.exists(f"/proc/{os.getpid()}/schedstat"):
        return  # not Linux: the figure is 0.0 there
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # this thread on one core
    try:
        before = runqueue_wait_s(os.getpid())
        stop = threading.Event()

        def spin() -> None:
            while not stop.is_set():
                pass

        rival = threading.Thread(target=spin)  # inherits the one core
        rival.start()
        total = 0
        for i in range(3_000_000):  # busy for a while beside it: both wait for the core
            total += i
        stop.set()
        rival.join()
        assert runqueue_wait_s(os.getpid()) > before
    finally:
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))


def test_a_process_that_is_gone_reads_as_no_wait() -> None:
    assert runqueue_wait_s(2**22 + 12345) == 0.0


def test_the_wait_is_the_second_schedstat_field() -> None:
    assert schedstat_wait_s("123456789 4500000000 77\n") == 4.5
