"""Plain-numpy reference implementations, for tests and benchmarks (never the hot path).

``resample_reference`` evaluates the defining sum of the polyphase resampler directly, in float64,
over the whole signal at once: ``y[n] = up * sum_i h[n*down - i*up] * x[i]`` for the full
convolution length. It shares only the filter design with the numba kernel.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bargein.dsp._design import design


def resample_reference(
    x: NDArray[np.floating], in_rate: int, out_rate: int, *, float32_taps: bool = False
) -> NDArray[np.float64]:
    """Whole-signal resampling, same alignment and length as ``Resampler.process + flush``."""
    d = design(in_rate, out_rate)
    xs = np.asarray(x, dtype=np.float64)
    if d.identity:
        return xs.copy()
    t = xs.shape[0]
    if t == 0:
        return np.zeros(0, np.float64)
    h = d.taps * d.up
    if float32_taps:
        h = h.astype(np.float32).astype(np.float64)
    up, down, n_taps = d.up, d.down, d.num_taps
    n_full = -((-((t - 1) * up + n_taps)) // down)
    n = np.arange(n_full, dtype=np.int64)
    newest = (n * down) // up  # newest input in output n's window
    phase = (n * down) % up
    y = np.zeros(n_full, np.float64)
    for k in range(d.taps_per_phase):
        i = newest - k
        tap = phase + k * up
        ok = (i >= 0) & (i < t) & (tap < n_taps)
        y[ok] += h[tap[ok]] * xs[i[ok]]
    return y


def streamed_length(n_in: int, in_rate: int, out_rate: int) -> int:
    """Outputs ``process`` has returned after ``n_in`` input samples: ceil(n_in*up/down)."""
    d = design(in_rate, out_rate)
    return -((-n_in * d.up) // d.down)
