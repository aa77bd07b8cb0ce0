"""The numba kernels, each written as plain typed Python and compiled with ``njit(cache=True)``.

The plain functions stay importable so tests can run the very same code uninterpreted by numba;
the compiled dispatchers are bound to precisely typed names, which is the typed face mypy sees.
Callers must pass C-contiguous, writeable arrays of the dtypes below: any other layout would make
numba compile a new specialization on the caller's frame (see ``resample.py``'s normalization).
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
I16 = NDArray[np.int16]

# `reassoc` lets LLVM vectorize the dot product (several partial sums). The reduction order then
# depends only on the compiled code and the tap count, never on where a chunk boundary fell, so
# chunked and whole-signal calls stay bit-identical (tests check this). No nnan/ninf: NaN input
# must propagate, not be assumed away.
_FASTMATH = {"reassoc", "contract"}


def resample_block_py(
    table: F32, buf: F32, x: F32, out: F32, state: I64, sched: I64
) -> int:
    """Polyphase FIR over one chunk; returns the number of outputs written.

    ``buf`` holds ``Kp-1`` samples of history followed by room for ``x``. ``state`` is
    ``[rel, phase]``: the next output's window starts at ``buf[rel]`` and uses ``table[phase]``.
    An output is produced as soon as the newest input sample in its window has arrived.
    """
    kp = table.shape[1]
    hist = kp - 1
    c = x.shape[0]
    buf[hist : hist + c] = x
    rel = state[0]
    p = state[1]
    n = 0
    while rel < c:
        h = table[p]
        w = buf[rel : rel + kp]
        acc = np.float32(0.0)
        for k in range(kp):
            acc += h[k] * w[k]
        out[n] = acc
        n += 1
        rel += sched[1, p]
        p = sched[0, p]
    # Keep the newest kp-1 samples; moving left, so a forward copy never overwrites its source.
    for i in range(hist):
        buf[i] = buf[c + i]
    state[0] = rel - c
    state[1] = p
    return n


def upsample_block_py(
    table: F32, buf: F32, x: F32, out: F32, state: I64, sched: I64
) -> int:
    """Integer upsampling (``down == 1``), same contract and result layout as resample_block.

    With down == 1 every call starts on phase 0 and input i yields outputs ``up*i + p``, all
    windows ending at i. So each phase is a plain FIR over the chunk, vectorized across outputs:
    every output is still one sequential sum over the taps (no reassociation needed), and four
    taps per pass keep the accumulator traffic down.
    """
    kp = table.shape[1]
    hist = kp - 1
    c = x.shape[0]
    up = table.shape[0]
    buf[hist : hist + c] = x
    acc = np.empty(c, np.float32)
    for p in range(up):
        h = table[p]
        acc[:] = 0.0
        for k in range(0, kp, 4):
            c0 = h[k]
            c1 = h[k + 1]
            c2 = h[k + 2]
            c3 = h[k + 3]
            b0 = buf[k : k + c]
            b1 = buf[k + 1 : k + 1 + c]
            b2 = buf[k + 2 : k + 2 + c]
            b3 = buf[k + 3 : k + 3 + c]
            for i in range(c):
                acc[i] = (((acc[i] + c0 * b0[i]) + c1 * b1[i]) + c2 * b2[i]) + c3 * b3[i]
        for i in range(c):
            out[up * i + p] = acc[i]
    for i in range(hist):
        buf[i] = buf[c + i]
    state[0] = 0
    state[1] = 0
    return up * c


def sum_squares_i16_py(x: I16) -> float:
    """Sum of squares in float64 (exact for any realistic frame length)."""
    acc = 0.0
    for i in range(x.shape[0]):
        v = float(x[i])
        acc += v * v
    return acc


resample_block: Callable[[F32, F32, F32, F32, I64, I64], int] = numba.njit(
    cache=True, nogil=True, fastmath=_FASTMATH
)(resample_block_py)

upsample_block: Callable[[F32, F32, F32, F32, I64, I64], int] = numba.njit(
    cache=True, nogil=True
)(upsample_block_py)

sum_squares_i16: Callable[[I16], float] = numba.njit(cache=True, nogil=True)(
    sum_squares_i16_py
)

# Everything warm_up() must compile or load, with one call each of the canonical types.
DISPATCHERS: tuple[object, ...] = (resample_block, upsample_block, sum_squares_i16)
