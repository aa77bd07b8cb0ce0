"""Helpers shared by the benchmarks: percentiles and output."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any


def percentiles(values: Sequence[float], points: Sequence[int] = (50, 99)) -> dict[str, float]:
    """Nearest-rank percentiles (plus max and count), rounded to 3 decimals.

    Nearest-rank, not interpolated: each pN is an observed sample, the smallest value with at
    least N% of the samples at or below it (numpy's `method="inverted_cdf"`). This differs on
    purpose from the linear interpolation of `np.percentile` (`engines.stats_ms`) and of
    `bargein.research.metrics.percentile`. Its one user, `bench runtime`, keeps it because its
    published figures and p99 targets (framework latency, barge-in silence) are stated in it:
    a p99 is a latency some frame actually saw, never a blend of two.
    """
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    out: dict[str, float] = {}
    for p in points:
        rank = max(1, math.ceil(p / 100 * len(ordered)))
        out[f"p{p}"] = round(ordered[rank - 1], 3)
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
