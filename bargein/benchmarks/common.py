"""Helpers shared by the benchmarks: percentiles, interleaved timing and output."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from bargein.stats import nearest_rank


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (`nearest_rank`, plus max and count), rounded to 3 decimals."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    out: dict[str, float] = {}
    for p in points:
        out[f"p{p}"] = round(nearest_rank(ordered, p), 3)
    out["max"] = round(ordered[-1], 3)
    out["n"] = len(ordered)
    return out


def emit(result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(result, indent=2))
        return
    for key, value in result.items():
        print(f"{key:32} {value}")


def rss_kib() -> int:
    """Resident set size of this process (Linux)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    import os

    return pages * os.sysconf("SC_PAGE_SIZE") // 1024


def time_per_call_us(
    fns: dict[str, Callable[[], object]], calls: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """(median, best) mean time per call over ``repeats`` runs of ``calls`` calls each.

    The contenders are interleaved run by run, so load from other processes on this shared
    machine hits all of them alike. The median is the figure judged; the best (least
    disturbed run) is given beside it.
    """
    for fn in fns.values():
        for _ in range(min(calls, 50)):
            fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            runs[name].append((time.perf_counter_ns() - t0) / calls / 1e3)
    return {name: (float(np.median(v)), min(v)) for name, v in runs.items()}
