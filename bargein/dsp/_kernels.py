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
    ``[rel, phase, odd]``: the next output's window starts at ``buf[rel]`` and uses
    ``table[phase]``; ``odd`` is the parity of its index in the stream. An output is produced as
    soon as the newest input sample in its window has arrived.

    Two outputs share one pass over the taps (two independent dot products in one loop: twice
    the work per loop iteration, half the loop and reduction overhead). Each output always runs
    in the lane given by its stream index parity, even at a chunk boundary (the idle lane then
    recomputes its partner's window and is discarded), so its reduction order never depends on
    where a chunk ended.
    """
    kp = table.shape[1]
    hist = kp - 1
    c = x.shape[0]
    buf[hist : hist + c] = x
    rel = state[0]
    p = state[1]
    odd = state[2]
    n = 0
    while rel < c:
        r0 = rel
        p0 = p
        rel += sched[1, p]
        p = sched[0, p]
        if odd:
            r1 = r0
            p1 = p0
            take0 = False
            take1 = True
            odd = 0
        elif rel < c:
            r1 = rel
            p1 = p
            rel += sched[1, p]
            p = sched[0, p]
            take0 = True
            take1 = True
        else:
            r1 = r0
            p1 = p0
            take0 = True
            take1 = False
            odd = 1
        h0 = table[p0]
        h1 = table[p1]
        w0 = buf[r0 : r0 + kp]
        w1 = buf[r1 : r1 + kp]
        a0 = np.float32(0.0)
        a1 = np.float32(0.0)
        for k in range(kp):
            a0 += h0[k] * w0[k]
            a1 += h1[k] * w1[k]
        if take0:
            out[n] = a0
            n += 1
        if take1:
            out[n] = a1
            n += 1
    # Keep the newest kp-1 samples; moving left, so a forward copy never overwrites its source.
    for i in range(hist):
        buf[i] = buf[c + i]
    state[0] = rel - c
    state[1] = p
    state[2] = odd
    return n


def phase_block_py(
    table: F32, buf: F32, x: F32, out: F32, state: I64, sched: I64
) -> int:
    """Small-``up`` ratios (48k->16k, 8k->16k, 24k->16k, ...): same contract as resample_block.

    Outputs ``n0+m, n0+m+up, ...`` (one class per phase) share their taps and their windows
    step by ``down`` inputs. Deinterleaving the buffer into ``down`` streams makes each class a
    plain FIR over contiguous data, vectorized across outputs; every output stays one sequential
    sum over the taps (no reassociation), four taps per pass to cut accumulator traffic.
    """
    kp = table.shape[1]
    hist = kp - 1
    c = x.shape[0]
    up = table.shape[0]
    down = sched[1, 0] * up + sched[0, 0]  # phase 0 steps to (down % up, down // up)
    buf[hist : hist + c] = x
    total = hist + c
    if down == 1:
        streams = buf[:total].reshape((1, total))  # already one contiguous stream
    else:
        streams = np.empty((down, (total + down - 1) // down), np.float32)
        for r in range(down):
            row = streams[r]
            for j in range((total - r + down - 1) // down):
                row[j] = buf[r + down * j]
    rel = state[0]
    p = state[1]
    acc = np.empty((c + down - 1) // down + 1, np.float32)
    n = 0
    m_rel = rel
    m_p = p
    for m in range(up):
        if m_rel >= c:
            break  # later classes start even later
        tc = (c - m_rel + down - 1) // down
        h = table[m_p]
        a = acc[:tc]
        a[:] = 0.0
        for k in range(0, kp, 4):
            i0 = m_rel + k
            s0 = streams[i0 % down, i0 // down : i0 // down + tc]
            s1 = streams[(i0 + 1) % down, (i0 + 1) // down : (i0 + 1) // down + tc]
            s2 = streams[(i0 + 2) % down, (i0 + 2) // down : (i0 + 2) // down + tc]
            s3 = streams[(i0 + 3) % down, (i0 + 3) // down : (i0 + 3) // down + tc]
            c0 = h[k]
            c1 = h[k + 1]
            c2 = h[k + 2]
            c3 = h[k + 3]
            for t in range(tc):
                a[t] = (((a[t] + c0 * s0[t]) + c1 * s1[t]) + c2 * s2[t]) + c3 * s3[t]
        for t in range(tc):
            out[m + up * t] = a[t]
        n += tc
        m_rel += sched[1, m_p]
        m_p = sched[0, m_p]
    # Advance the state by n outputs: whole periods of `up` outputs move `down` inputs.
    q = n // up
    rel += q * down
    for _ in range(n - q * up):
        rel += sched[1, p]
        p = sched[0, p]
    for i in range(hist):
        buf[i] = buf[c + i]
    state[0] = rel - c
    state[1] = p
    return n


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

phase_block: Callable[[F32, F32, F32, F32, I64, I64], int] = numba.njit(
    cache=True, nogil=True
)(phase_block_py)

sum_squares_i16: Callable[[I16], float] = numba.njit(cache=True, nogil=True)(
    sum_squares_i16_py
)

# Everything warm_up() must compile or load, with one call each of the canonical types.
DISPATCHERS: tuple[object, ...] = (resample_block, phase_block, sum_squares_i16)
