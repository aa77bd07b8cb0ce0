"""The one percentile definition of every figure bargein prints (benchmarks and research).

Nearest rank: a pN is a value some sample actually took (a latency some frame or some item
saw), never a blend of two neighbours.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def nearest_rank(values: Sequence[float], p: float) -> float:
    """The nearest-rank `p`th percentile (0 < p <= 100) of non-empty `values`: the smallest
    sample with at least p% of the samples at or below it (numpy's `method="inverted_cdf"`).

    With few samples it can sit one sample below an interpolated pN (p50 of an even count is
    the lower middle; p95 of 20 is the 19th).
    """
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]
