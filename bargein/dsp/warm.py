"""Start-up warm-up: compile (or load from numba's cache) every kernel before the first frame."""

from __future__ import annotations

import time

import numpy as np

from bargein.dsp import _kernels
from bargein.dsp.resample import Resampler

# Conversions the runtime uses; their filter designs are built (and cached) during warm-up too.
COMMON_CONVERSIONS: tuple[tuple[int, int], ...] = (
    (48_000, 16_000), (16_000, 48_000), (44_100, 16_000), (22_050, 16_000), (24_000, 16_000),
    (24_000, 48_000), (8_000, 16_000), (16_000, 8_000), (22_050, 48_000), (24_000, 8_000),
    (16_000, 24_000), (16_000, 44_100),
)


def warm_up() -> float:
    """Compile/load every numba kernel with the exact types the faces pass; return seconds.

    Runs every common conversion once through a real resampler, which also builds and caches
    its filter tables.
    """
    t0 = time.perf_counter()
    x = np.zeros(441, np.float32)
    for in_rate, out_rate in COMMON_CONVERSIONS:
        r = Resampler(in_rate, out_rate)
        r.process(x)
        r.flush()
    _kernels.sum_squares_i16(np.zeros(4, np.int16))
    return time.perf_counter() - t0
