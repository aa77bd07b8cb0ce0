"""Radix-2 FFT in plain typed Python, compiled with numba (numba cannot call ``np.fft``).

Used inside other kernels (the echo canceller's block filter), so the functions here are
compiled and also importable uncompiled; ``tests/test_dsp_echo.py`` checks them against
``np.fft``. float64/complex128 throughout: an adaptive filter accumulates rounding for hours.

A real FFT of length ``n`` (a power of two, >= 4) runs as one complex FFT of ``n/2`` points on
the even/odd samples packed as real/imaginary parts, then a split pass (the textbook
"two-for-one" trick), so it costs about half a complex FFT of ``n``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numba
import numpy as np
from numba.extending import register_jitable
from numpy.typing import NDArray

F64 = NDArray[np.float64]
C128 = NDArray[np.complex128]
I64 = NDArray[np.int64]


class RealFftPlan(NamedTuple):
    """Tables for a real FFT of ``n`` points (shared read-only by every caller)."""

    n: int
    rev: I64  # bit reversal of n/2 indices
    tw: C128  # exp(-2 pi i k / (n/2)), k < n/4: the half-size complex FFT's twiddles
    split: C128  # exp(-2 pi i k / n), k <= n/2: the real/complex split pass
    z: C128  # scratch, n/2 points


def real_fft_plan(n: int) -> RealFftPlan:
    if n < 4 or n & (n - 1):
        raise ValueError(f"FFT length must be a power of two >= 4, got {n}")
    m = n // 2
    bits = m.bit_length() - 1
    rev = np.array([int(format(i, f"0{bits}b")[::-1], 2) if bits else 0 for i in range(m)],
                   np.int64)
    tw = np.exp(-2j * np.pi * np.arange(m // 2) / m).astype(np.complex128)
    split = np.exp(-2j * np.pi * np.arange(m + 1) / n).astype(np.complex128)
    return RealFftPlan(n, rev, tw, split, np.zeros(m, np.complex128))


@register_jitable  # callable from other kernels as well as from Python
def cfft_py(z: C128, rev: I64, tw: C128, inverse: bool) -> None:
    """In-place unnormalized complex FFT (inverse: conjugate twiddles, no 1/n)."""
    m = z.shape[0]
    for i in range(m):
        j = rev[i]
        if j > i:
            t = z[i]
            z[i] = z[j]
            z[j] = t
    size = 2
    while size <= m:
        half = size // 2
        step = m // size
        for start in range(0, m, size):
            for k in range(half):
                w = tw[k * step]
                if inverse:
                    w = w.conjugate()
                a = z[start + k]
                b = z[start + k + half] * w
                z[start + k] = a + b
                z[start + k + half] = a - b
        size *= 2


@register_jitable  # callable from other kernels as well as from Python
def rfft_py(x: F64, out: C128, rev: I64, tw: C128, split: C128, z: C128) -> None:
    """``out[:n/2+1] = np.fft.rfft(x)`` for ``x`` of ``n`` samples."""
    m = z.shape[0]
    for k in range(m):
        z[k] = complex(x[2 * k], x[2 * k + 1])
    cfft_py(z, rev, tw, False)
    # Z[k] = E[k] + i O[k] with E, O the spectra of the even and odd samples.
    for k in range(m + 1):
        a = z[k % m]
        b = z[(m - k) % m].conjugate()
        even = 0.5 * (a + b)
        odd = -0.5j * (a - b)
        out[k] = even + split[k] * odd


@register_jitable  # callable from other kernels as well as from Python
def irfft_py(spec: C128, x: F64, rev: I64, tw: C128, split: C128, z: C128) -> None:
    """``x[:] = np.fft.irfft(spec, n)`` for ``spec`` of ``n/2+1`` bins (imaginary parts of
    the DC and Nyquist bins ignored, as numpy does)."""
    m = z.shape[0]
    for k in range(m):
        a = spec[k]
        b = spec[m - k].conjugate()
        even = 0.5 * (a + b)
        odd = 0.5 * (a - b) * split[k].conjugate()
        z[k] = even + 1j * odd
    cfft_py(z, rev, tw, True)
    scale = 1.0 / m
    for k in range(m):
        x[2 * k] = z[k].real * scale
        x[2 * k + 1] = z[k].imag * scale


_jit = numba.njit(cache=True, nogil=True)
cfft: Callable[[C128, I64, C128, bool], None] = _jit(cfft_py)
rfft: Callable[[F64, C128, I64, C128, C128, C128], None] = _jit(rfft_py)
irfft: Callable[[C128, F64, I64, C128, C128, C128], None] = _jit(irfft_py)
