"""Ducking: a smooth gain ramp on the reply's audio (down by ``depth_db`` and back), no click.

The gain moves between targets along a raised cosine of ``ramp_ms``: ``g(t) = a + (b - a) *
(1 - cos(pi t)) / 2`` for ``t`` in (0, 1], starting from wherever the gain is when the command
takes effect (a restore mid-ramp turns around smoothly). Gains are a function of the absolute
sample index and the commands' sample indices only, so any chunking gives the same output
(``np.array_equal``). The largest sample-to-sample gain step of one ramp is
``|b - a| * sin(pi / (2 n)) <= |b - a| * pi / (2 n)`` for ``n`` ramp samples: 0.0033 for a full
fade over 30 ms at 16 kHz, far below an audible click.

``duck(at=None)``, ``restore(at=None)``, ``fade_out(at=None, samples=None)`` (to silence, for
a cancel that must not click; ``samples`` overrides the ramp's length, so a fade can end
exactly where the audio does) and ``set_gain_db(db, at=None)`` take effect at sample ``at``
(absolute, since construction) or, when None, at the next sample processed. A command for a
sample already processed raises ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numba
import numpy as np
from numpy.typing import NDArray

from bargein.dsp.pcm import float32_to_pcm16, pcm16_to_float32

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

# state: [gain at ramp start, ramp target, samples into the ramp, ramp length, current gain]
_FROM, _TO, _POS, _LEN, _GAIN = range(5)


def apply_ramp_py(x: F32, out: F32, state: F64) -> None:
    """``out = x * g`` with ``g`` following the ramp in ``state`` (advanced in place)."""
    a = state[_FROM]
    b = state[_TO]
    pos = state[_POS]
    n = state[_LEN]
    g = state[_GAIN]
    for i in range(x.shape[0]):
        if pos < n:
            pos += 1.0
            g = a + (b - a) * 0.5 * (1.0 - math.cos(math.pi * pos / n))
        else:
            g = b
        out[i] = np.float32(x[i] * g)
    state[_POS] = pos
    state[_GAIN] = g


apply_ramp: Callable[[F32, F32, F64], None] = numba.njit(cache=True, nogil=True)(apply_ramp_py)


class Ducker:
    """Gain ramps for the reply's playback; one per output stream."""

    def __init__(self, rate: int, *, depth_db: float = -15.0, ramp_ms: float = 30.0) -> None:
        if not isinstance(rate, int) or rate <= 0:
            raise ValueError(f"rate must be a positive int, got {rate!r}")
        if not (math.isfinite(depth_db) and depth_db <= 0.0):
            raise ValueError(f"depth_db must be finite and <= 0, got {depth_db}")
        if not (math.isfinite(ramp_ms) and ramp_ms > 0.0):
            raise ValueError(f"ramp_ms must be finite and > 0, got {ramp_ms}")
        self.rate = rate
        self.depth_db = float(depth_db)
        self.ramp_samples = max(1, round(ramp_ms * rate / 1000))
        self._state = np.array([1.0, 1.0, 0.0, float(self.ramp_samples), 1.0], np.float64)
        # (sample index, target gain, ramp samples), in sample order
        self._pending: list[tuple[int, float, int]] = []
        self._n = 0  # samples processed

    # -- commands ----------------------------------------------------------------------
    def duck(self, at: int | None = None) -> None:
        self._command(10 ** (self.depth_db / 20), at)

    def restore(self, at: int | None = None) -> None:
        self._command(1.0, at)

    def fade_out(self, at: int | None = None, samples: int | None = None) -> None:
        if samples is not None and (not isinstance(samples, int) or samples < 1):
            raise ValueError(f"samples must be a positive int, got {samples!r}")
        self._command(0.0, at, samples)

    def set_gain_db(self, db: float, at: int | None = None) -> None:
        if not (math.isfinite(db) and db <= 0.0):
            raise ValueError(f"gain must be finite and <= 0 dB, got {db}")
        self._command(10 ** (db / 20), at)

    def _command(self, target: float, at: int | None, samples: int | None = None) -> None:
        when = self._n if at is None else int(at)
        if when < self._n:
            raise ValueError(f"sample {when} was already processed (now at {self._n})")
        if self._pending and when < self._pending[-1][0]:
            raise ValueError("commands must be given in sample order")
        self._pending.append((when, target, samples or self.ramp_samples))

    # -- audio -------------------------------------------------------------------------
    @property
    def gain(self) -> float:
        """Gain applied to the last sample processed."""
        return float(self._state[_GAIN])

    @property
    def target(self) -> float:
        return float(self._state[_TO])

    @property
    def samples(self) -> int:
        return self._n

    @property
    def settled(self) -> bool:
        """No ramp in progress and no command pending."""
        return not self._pending and self._state[_POS] >= self._state[_LEN]

    def process(self, x: NDArray[np.floating]) -> F32:
        a = np.asarray(x)
        if a.ndim != 1:
            raise ValueError(f"expected a 1-D (mono) array, got shape {a.shape}")
        if a.dtype.kind != "f":
            raise TypeError(f"process() takes float samples, got {a.dtype}; use process_int16()")
        src = np.ascontiguousarray(a, dtype=np.float32)
        out = np.empty_like(src)
        c = src.shape[0]
        done = 0
        # Split the chunk at each command's sample, so it starts a ramp exactly there.
        while self._pending and self._pending[0][0] < self._n + c - done:
            when, target, length = self._pending.pop(0)
            cut = when - self._n
            if cut > 0:
                apply_ramp(src[done : done + cut], out[done : done + cut], self._state)
                done += cut
                self._n += cut
            s = self._state
            s[_FROM] = s[_GAIN]
            s[_TO] = target
            s[_POS] = 0.0
            s[_LEN] = float(length)
        apply_ramp(src[done:], out[done:], self._state)
        self._n += c - done
        return out

    def process_int16(self, x: NDArray[np.int16]) -> NDArray[np.int16]:
        return float32_to_pcm16(self.process(pcm16_to_float32(x)))
