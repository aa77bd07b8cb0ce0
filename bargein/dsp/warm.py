"""Start-up warm-up: compile (or load from numba's cache) every kernel before the first frame."""

from __future__ import annotations

import time

import numpy as np

from bargein.dsp import _kernels
from bargein.dsp._design import design, polyphase_table

# Conversions the runtime uses; their filter designs are built (and cached) during warm-up too.
COMMON_CONVERSIONS: tuple[tuple[int, int], ...] = (
    (48_000, 16_000), (16_000, 48_000), (44_100, 16_000), (22_050, 16_000), (24_000, 16_000),
    (24_000, 48_000), (8_000, 16_000), (16_000, 8_000), (22_050, 48_000), (24_000, 8_000),
    (16_000, 24_000), (16_000, 44_100),
)


def warm_up() -> float:
    """Compile/load every numba kernel with the exact types the faces pass; return seconds."""
    t0 = time.perf_counter()
    # One call per kernel, with the canonical argument types (C-contiguous, writeable arrays).
    table = np.zeros((1, 8), np.float32)
    buf = np.zeros(16, np.float32)
    x = np.zeros(4, np.float32)
    out = np.zeros(4, np.float32)
    state = np.zeros(3, np.int64)
    sched = np.array([[0], [1]], np.int64)
    _kernels.resample_block(table, buf, x, out, state, sched)
    _kernels.phase_block(table, buf, x, out, state, sched)
    _kernels.sum_squares_i16(np.zeros(4, np.int16))
    for in_rate, out_rate in COMMON_CONVERSIONS:
        polyphase_table(design(in_rate, out_rate))
    return time.perf_counter() - t0
