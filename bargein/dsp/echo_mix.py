"""Synthetic echo paths and the ERLE measure, for the canceller's tests and benchmark.

Not the hot path. ``room_response`` builds a measured-looking loudspeaker-to-microphone impulse
response: silence for the bulk delay, a direct path, a few early reflections, then exponentially
decaying noise with the given RT60 (energy down 60 dB after ``rt60_ms``), low-passed a little
the way air and a small loudspeaker do.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]


def room_response(
    rate: int = 16000,
    *,
    delay_ms: float = 40.0,
    rt60_ms: float = 150.0,
    length_ms: float = 120.0,
    gain_db: float = -6.0,
    seed: int = 0,
) -> F64:
    """Impulse response (float64); its energy is ``gain_db`` relative to a unit impulse."""
    rng = np.random.default_rng(seed)
    d = round(delay_ms * rate / 1000)
    n = round(length_ms * rate / 1000)
    t = np.arange(n) / rate
    # Amplitude envelope exp(-6.91 t / rt60): energy falls 60 dB in rt60.
    tail = rng.standard_normal(n) * np.exp(-6.91 * t / (rt60_ms / 1000)) * 0.3
    tail[: int(0.002 * rate)] = 0.0  # reverberation starts after the direct sound
    h = tail
    h[0] += 1.0
    for ms, g in ((3.1, -0.5), (5.7, 0.35), (9.4, -0.25), (14.2, 0.2)):
        k = round(ms * rate / 1000)
        if k < n:
            h[k] += g
    # Gentle low-pass (3-tap), then scale to the requested energy.
    h = np.convolve(h, [0.25, 0.5, 0.25])[:n]
    h *= 10 ** (gain_db / 20) / np.sqrt(np.sum(h * h))
    return np.concatenate((np.zeros(d), h))


def echo_of(far: NDArray[np.floating], response: F64) -> F64:
    """The echo ``far`` makes through ``response`` (same length as ``far``)."""
    f = np.asarray(far, np.float64)
    return np.convolve(f, response)[: f.shape[0]]


def erle_db(mic: NDArray[np.floating], cleaned: NDArray[np.floating]) -> float:
    """Echo return loss enhancement: 10 log10(mic energy / residual energy), over far-only
    audio (no near-end speech in ``mic``)."""
    m = np.asarray(mic, np.float64)
    c = np.asarray(cleaned, np.float64)
    return float(10 * np.log10(np.sum(m * m) / max(float(np.sum(c * c)), 1e-30)))


def segment_erle_db(
    mic: NDArray[np.floating], cleaned: NDArray[np.floating], rate: int, seg_ms: float = 500.0,
    min_dbfs: float = -50.0,
) -> F64:
    """ERLE per ``seg_ms`` segment, NaN where the mic is quieter than ``min_dbfs`` (no echo to
    speak of)."""
    n = int(rate * seg_ms / 1000)
    m = np.asarray(mic, np.float64)
    c = np.asarray(cleaned, np.float64)
    k = min(m.shape[0], c.shape[0]) // n
    out = np.full(k, np.nan)
    for i in range(k):
        a = m[i * n : (i + 1) * n]
        e = float(np.mean(a * a))
        if 10 * np.log10(max(e, 1e-30)) >= min_dbfs:
            out[i] = erle_db(a, c[i * n : (i + 1) * n])
    return out
