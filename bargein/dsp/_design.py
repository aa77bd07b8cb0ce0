"""Anti-aliasing / anti-imaging filter design for the polyphase resampler (numpy; the kernels'
vector width, LANES, shapes the tables).

One prototype low-pass FIR runs at the virtual rate ``in_rate * up`` (``up/down`` is the reduced
ratio ``out_rate/in_rate``). Its stopband starts at the lower of the two Nyquist frequencies, so
nothing that would alias (downsampling) or image (upsampling) gets through above the design
attenuation. The transition band is 20 % of that Nyquist, widened only as far as needed to keep
the group delay inside the latency budget (the 8 kHz side is the only case that needs it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from bargein.dsp._simd import LANES

MIN_RATE = 8_000
MAX_RATE = 192_000
MAX_UP = 1_024  # polyphase table rows; bounds memory (rows * taps_per_phase floats)

ATTEN_DB = 84.0  # Kaiser design target; measured worst case stays >= 80 dB with float32 taps
MAX_DELAY_S = 0.0029  # group-delay budget; the brief allows 3 ms
TRANSITION = 0.2  # transition width as a fraction of the lower Nyquist
TAP_ALIGN = LANES  # taps per phase rounded up to whole vectors (zero taps, no extra delay)
SNAP = 0.03  # at most this fraction of the taps dropped to end a phase on a vector boundary
CACHE_LINE = 64  # tables start on a cache line: split vector loads cost ~15 % (measured)


@dataclass(frozen=True, slots=True)
class FilterDesign:
    """A resampling filter: ratio, band edges, prototype taps and the derived delay."""

    in_rate: int
    out_rate: int
    up: int  # L: reduced out_rate / in_rate numerator
    down: int  # M: reduced denominator
    passband_hz: float
    stopband_hz: float
    atten_db: float
    beta: float
    taps: NDArray[np.float64]  # prototype at in_rate*up, DC gain 1 (0 taps for identity)

    @property
    def num_taps(self) -> int:
        return int(self.taps.shape[0])

    @property
    def taps_per_phase(self) -> int:
        return -(-self.num_taps // self.up)

    @property
    def delay_s(self) -> float:
        """Group delay of the linear-phase prototype: (N-1)/2 samples at in_rate*up."""
        if self.num_taps == 0:
            return 0.0
        return (self.num_taps - 1) / (2.0 * self.in_rate * self.up)

    @property
    def identity(self) -> bool:
        return self.up == 1 and self.down == 1


def reduce_ratio(in_rate: int, out_rate: int) -> tuple[int, int]:
    """Validate the rates and return (up, down) = out/in in lowest terms."""
    for name, rate in (("in_rate", in_rate), ("out_rate", out_rate)):
        if isinstance(rate, bool) or not isinstance(rate, int | np.integer):
            raise ValueError(f"{name} must be an int, got {rate!r}")
        if not MIN_RATE <= rate <= MAX_RATE:
            raise ValueError(f"{name}={rate} Hz outside the supported {MIN_RATE}..{MAX_RATE} Hz")
    g = math.gcd(int(in_rate), int(out_rate))
    up, down = int(out_rate) // g, int(in_rate) // g
    if up > MAX_UP:
        raise ValueError(
            f"unsupported ratio {out_rate}/{in_rate} = {up}/{down}: numerator > {MAX_UP}"
        )
    return up, down


def design(in_rate: int, out_rate: int) -> FilterDesign:
    """Kaiser-windowed-sinc prototype for ``in_rate -> out_rate`` (cached per pair)."""
    # Validate before the cache: 16000.0 hashes like 16000 and must still be rejected.
    reduce_ratio(in_rate, out_rate)
    return _design(int(in_rate), int(out_rate))


@lru_cache(maxsize=64)
def _design(in_rate: int, out_rate: int) -> FilterDesign:
    up, down = reduce_ratio(in_rate, out_rate)
    if up == down:
        return FilterDesign(
            int(in_rate), int(out_rate), 1, 1, in_rate / 2, in_rate / 2, math.inf, 0.0,
            np.zeros(0, np.float64),
        )
    fu = float(in_rate) * up  # prototype sample rate
    f_low = min(in_rate, out_rate) / 2.0
    # Kaiser's estimate N-1 = (A-7.95) / (2.285 * 2*pi*df/fu) and delay (N-1)/(2 fu) give the
    # narrowest transition that still fits the delay budget.
    df_budget = (ATTEN_DB - 7.95) / (2.285 * 4.0 * math.pi * MAX_DELAY_S)
    df = max(TRANSITION * f_low, df_budget)
    stop = f_low
    passband = stop - df
    cutoff = stop - df / 2.0
    dw = 2.285 * 2.0 * math.pi * df / fu
    n_taps = math.ceil((ATTEN_DB - 7.95) / dw) + 1
    # The kernels pad each phase to whole 16-tap vectors, so a few taps over a vector boundary
    # cost a whole vector: 44.1k->16k needs 147 taps per output, padded to 160. When dropping
    # to the boundary costs at most SNAP of the taps, take it and let the attenuation give
    # (Kaiser: 144 taps design to 83.0 dB, measured 84.8, over the 80 dB floor) while the band
    # edges stay put. 10 % less work for that conversion; no other is near a boundary.
    per_phase = -(-n_taps // up)
    whole = per_phase // TAP_ALIGN * TAP_ALIGN
    atten = ATTEN_DB
    if whole and 0 < per_phase - whole <= SNAP * per_phase:
        n_taps = min(n_taps, whole * up)
        atten = 7.95 + dw * (n_taps - 1)
    beta = 0.1102 * (atten - 8.7)
    n = np.arange(n_taps, dtype=np.float64) - (n_taps - 1) / 2.0
    h = (2.0 * cutoff / fu) * np.sinc((2.0 * cutoff / fu) * n) * np.kaiser(n_taps, beta)
    h /= h.sum()
    return FilterDesign(int(in_rate), int(out_rate), up, down, passband, stop, atten, beta, h)


def aligned_zeros(shape: tuple[int, ...]) -> NDArray[np.float32]:
    """A zeroed float32 array whose data starts on a cache line (numpy promises only 16 bytes)."""
    n = int(np.prod(shape))
    raw = np.zeros(n + CACHE_LINE // 4, np.float32)
    start = (-raw.ctypes.data % CACHE_LINE) // 4
    return raw[start : start + n].reshape(shape)


def polyphase_table(d: FilterDesign) -> NDArray[np.float32]:
    """Rows per phase p, taps reversed so row p dots with the oldest-to-newest input window.

    ``table[p, Kp-1-k] = up * h[p + k*up]``: output n uses phase ``p = n*down mod up`` and the
    window ending at input ``floor(n*down/up)``. Rows are zero-padded at the old end to a
    multiple of TAP_ALIGN taps, which adds work but no delay.
    """
    k = d.taps_per_phase
    kp = -(-k // TAP_ALIGN) * TAP_ALIGN
    h = np.zeros(k * d.up, np.float64)
    h[: d.num_taps] = d.taps * d.up
    by_phase = h.reshape(k, d.up).T  # [p, k] = h[p + k*up]
    table = aligned_zeros((d.up, kp))
    table[:, kp - k :] = by_phase[:, ::-1]
    return table


def block_table(d: FilterDesign, block: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The transposed table and input plan of ``resample_up`` (see its docstring).

    Row ``o`` holds what one input adds to the outputs from the first one it reaches, ``o``
    being that output's offset ``first*down - i*up`` into the prototype; ``block`` zeros on
    either side let a block of ``block`` outputs read any input's row at any lane with one
    load, inputs outside an output's window reading zeros. ``plan = [up, hist, offs...]``.
    """
    up, down, n_taps = d.up, d.down, d.num_taps
    k = d.taps_per_phase
    reach = -(-n_taps // down)  # most outputs one input reaches
    lag = -(-k * up // down) + 1  # how far behind a block's first output an input's first can be
    width = -(-(2 * block + max(reach, lag)) // LANES) * LANES
    h = np.zeros(down * (width + 1), np.float64)
    h[:n_taps] = d.taps * up
    j = np.arange(width - block)
    table = aligned_zeros((down, width))
    for o in range(down):
        table[o, block:] = h[o + j * down]
    # Inputs one block reads: its first output's window plus the block's stride, plus one.
    span = k + ((block - 1) * down) // up + 2
    i = np.arange(down + span, dtype=np.int64)
    first = (i * up + down - 1) // down
    offs = (first * down - i * up) * width - first
    plan = np.concatenate((np.array([up, k - 1], np.int64), offs))
    return table, np.ascontiguousarray(plan)
