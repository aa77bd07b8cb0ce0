"""The numba kernels, each written as plain typed Python and compiled with ``njit(cache=True)``.

The plain functions stay importable so tests can run the very same code uninterpreted by numba;
the compiled dispatchers are bound to precisely typed names, which is the typed face mypy sees.
The resampler calls them through their native entry (``native``), which takes exactly
``KERNEL_SIG`` and checks nothing: ``resample.py`` normalizes every chunk to that layout first.

Two resampling kernels, chosen by direction, compute the same sum
``y[n] = up * sum_i h[n*down - i*up] * x[i]`` with explicit 16-lane vectors (``_simd``): no
fast-math, so each output's arithmetic is one fixed sequence of operations wherever chunk
boundaries fall, and any chunking is bit-identical to one call.
"""

from __future__ import annotations

from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

from bargein.dsp._simd import LANES, vadd, vfma, vload, vstore, vsum, vzero

F32 = NDArray[np.float32]
I64 = NDArray[np.int64]
I16 = NDArray[np.int16]

def resample_down_py(table: F32, buf: F32, x: F32, out: F32, state: I64, step: I64) -> int:
    """Downsampling (and any ``up < down``): one dot product per output; returns outputs written.

    ``buf`` holds ``Kp-1`` samples of history followed by room for ``x``. ``table[p]`` is phase
    ``p``'s taps, oldest first, ``Kp`` a multiple of 16. ``state = [rel, phase, 0]``: the next
    output's window starts at ``buf[rel]``. ``step = [down // up, down % up]``. An output is
    produced as soon as the newest input in its window has arrived.

    Each output takes its taps in 16-lane vectors, spread over four accumulators (independent
    chains of fused multiply-adds; the last, partial group of four goes to the first), then
    adds them pairwise and sums the lanes by a fixed tree.
    """
    kp = table.shape[1]
    up = table.shape[0]
    hist = kp - 1
    flat = table.reshape(up * kp)
    quads = kp // (4 * LANES) * (4 * LANES)
    dq = step[0]
    dm = step[1]
    c = x.shape[0]
    buf[hist : hist + c] = x
    rel = state[0]
    p = state[1]
    n = 0
    while rel < c:
        row = p * kp
        a0 = vzero()
        a1 = vzero()
        a2 = vzero()
        a3 = vzero()
        for k in range(0, quads, 4 * LANES):
            a0 = vfma(a0, vload(flat, row + k), vload(buf, rel + k))
            a1 = vfma(a1, vload(flat, row + k + LANES), vload(buf, rel + k + LANES))
            a2 = vfma(a2, vload(flat, row + k + 2 * LANES), vload(buf, rel + k + 2 * LANES))
            a3 = vfma(a3, vload(flat, row + k + 3 * LANES), vload(buf, rel + k + 3 * LANES))
        for k in range(quads, kp, LANES):
            a0 = vfma(a0, vload(flat, row + k), vload(buf, rel + k))
        out[n] = vsum(vadd(vadd(a0, a1), vadd(a2, a3)))
        n += 1
        # Next output: the phase moves by down % up, the window by down // up, and by one
        # more input when the phase wraps (arithmetic, not a table: no load on this chain).
        p += dm
        rel += dq
        if p >= up:
            p -= up
            rel += 1
    # Keep the newest kp-1 samples; moving left, so a forward copy never overwrites its source.
    for i in range(hist):
        buf[i] = buf[c + i]
    state[0] = rel - c
    state[1] = p
    return n


BLOCK = 2 * LANES  # outputs per block of upsample_block: two vectors, two independent chains


def resample_up_py(
    table: F32, buf: F32, x: F32, out: F32, state: I64, plan: I64
) -> int:
    """Upsampling (``up > down``): blocks of 32 consecutive outputs, two vectors of 16 lanes.

    Same contract as resample_down, in a transposed layout (see ``_design.block_table``):
    ``table[o, BLOCK + j] = up*h[o + j*down]`` is what one input adds to the j-th output from
    the first one it reaches, ``o`` being that output's offset into the prototype.
    ``plan = [up, hist, offs...]`` with ``offs[r] = o(r)*row - first(r)`` for input index r, so
    input ``i = q*down + r`` adds ``table.flat[offs[r] + n + BLOCK - q*up + lane]`` to output
    ``n + lane``. ``state = [inputs, outputs]`` counts the stream so far.

    Each block sums its inputs oldest to newest, as one fused multiply-add per input and
    vector: an output's sum is the same sequence of operations whichever block, lane or chunk
    it falls in (inputs outside its window add exact zeros), so chunking never changes a
    sample. No per-output reduction and no table row per output: two vectors accumulate in
    registers while each input's row segment streams past.
    """
    down = table.shape[0]
    row = table.shape[1]
    flat = table.reshape(down * row)
    up = plan[0]
    hist = plan[1]
    c = x.shape[0]
    buf[hist : hist + c] = x
    t0 = state[0]
    n = state[1]
    t = t0 + c
    n_avail = (t * up + down - 1) // down
    first_in = t0 - hist  # stream index of buf[0]
    w = 0
    while n < n_avail:
        lo = (n * down) // up - hist
        hi = ((n + BLOCK - 1) * down) // up
        if hi > t - 1:
            hi = t - 1  # a partial last block: its lanes past n_avail are discarded
        cnt = hi + 1 - lo
        q = lo // down
        r = lo - q * down
        shift = n + BLOCK - q * up
        xs = buf[lo - first_in : lo - first_in + cnt]
        offs = plan[2 + r : 2 + r + cnt]
        a0 = vzero()
        a1 = vzero()
        for k in range(cnt):
            off = offs[k] + shift
            xk = xs[k]
            a0 = vfma(a0, vload(flat, off), xk)
            a1 = vfma(a1, vload(flat, off + LANES), xk)
        m = n_avail - n
        if m >= BLOCK:
            vstore(out, w, a0)
            vstore(out, w + LANES, a1)
            m = BLOCK
        else:
            tail = np.empty(BLOCK, np.float32)
            vstore(tail, 0, a0)
            vstore(tail, LANES, a1)
            for k in range(m):
                out[w + k] = tail[k]
        w += m
        n += m
    for i in range(hist):
        buf[i] = buf[c + i]
    state[0] = t
    state[1] = n
    return w


def sum_squares_i16_py(x: I16) -> float:
    """Sum of squares in float64 (exact for any realistic frame length)."""
    acc = 0.0
    for i in range(x.shape[0]):
        v = float(x[i])
        acc += v * v
    return acc


# No fast-math: every vector operation is explicit already (see _simd).
resample_down: Callable[[F32, F32, F32, F32, I64, I64], int] = numba.njit(
    cache=True, nogil=True
)(resample_down_py)

resample_up: Callable[[F32, F32, F32, F32, I64, I64], int] = numba.njit(
    cache=True, nogil=True
)(resample_up_py)

sum_squares_i16: Callable[[I16], float] = numba.njit(cache=True, nogil=True)(
    sum_squares_i16_py
)

# The one argument layout the faces pass: (table, buf, x, out, state, side table).
KERNEL_SIG = (
    numba.float32[:, ::1], numba.float32[::1], numba.float32[::1], numba.float32[::1],
    numba.int64[::1], numba.int64[::1],
)


def native(kernel: Callable[[F32, F32, F32, F32, I64, I64], int]) -> Callable[
    [F32, F32, F32, F32, I64, I64], int
]:
    """The kernel compiled (or loaded from the cache) for KERNEL_SIG, as its native entry.

    Calling it skips numba's per-call type dispatch (~0.15 µs of a ~4 µs call) and never
    compiles, but checks nothing: the caller must pass exactly KERNEL_SIG's types.
    """
    entry: Callable[[F32, F32, F32, F32, I64, I64], int] = kernel.compile(  # type: ignore[attr-defined]
        KERNEL_SIG
    )
    return entry


# Everything warm_up() must compile or load.
DISPATCHERS: tuple[object, ...] = (resample_down, resample_up, sum_squares_i16)

# The plain function behind each resampling kernel (tests run both and compare).
PLAIN: dict[object, Callable[[F32, F32, F32, F32, I64, I64], int]] = {
    resample_down: resample_down_py,
    resample_up: resample_up_py,
}
