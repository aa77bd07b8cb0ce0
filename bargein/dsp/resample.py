"""Streaming rational-ratio resampler (polyphase FIR), its alignment and end-of-stream flush.

Alignment: with ``up/down = out_rate/in_rate`` in lowest terms and prototype taps ``h`` (N taps at
``in_rate*up``), output sample n is ``y[n] = up * sum_i h[n*down - i*up] * x[i]`` (zero history
before the first sample). It needs inputs up to ``floor(n*down/up)``, so after T input samples
exactly ``ceil(T*up/down)`` outputs exist, whatever the chunking. ``flush()`` returns the rest of
the full convolution, ``ceil(((T-1)*up + N)/down)`` samples in all, the same length as
``scipy.signal.upfirdn``. The output lags the input by ``delay_ms`` (group delay (N-1)/2 taps).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from bargein.dsp import _kernels
from bargein.dsp._design import FilterDesign, block_table, design, polyphase_table
from bargein.dsp.pcm import float32_to_pcm16, pcm16_to_float32

# Chunks larger than this are cut into blocks, so the history buffer stays small. The split is
# invisible in the output: chunking never changes a sample.
_BLOCK = 1 << 15

_F32 = np.dtype(np.float32)


def _as_f32(x: NDArray[np.float32]) -> NDArray[np.float32]:
    """A copy of ``x`` in the one layout the native kernel takes (see ``process``)."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"expected a 1-D (mono) array, got shape {a.shape}")
    if a.dtype.kind != "f":
        raise TypeError(
            f"process() takes float samples, got {a.dtype}; use process_int16() for PCM16"
        )
    return np.array(a, dtype=np.float32, order="C")


@lru_cache(maxsize=32)
def _tables(in_rate: int, out_rate: int) -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """The kernel's coefficient table and its int64 side table, shared by every resampler of
    the pair (kernels only read them)."""
    d = design(in_rate, out_rate)
    if d.up > d.down:
        return block_table(d, _kernels.BLOCK)
    return polyphase_table(d), np.array([d.down // d.up, d.down % d.up], np.int64)


class Resampler:
    """Streaming polyphase resampler; any chunking gives bit-identical output."""

    __slots__ = (
        "_buf",
        "_design",
        "_down",
        "_hist",
        "_identity",
        "_kernel",
        "_n_in",
        "_n_out",
        "_room",
        "_run",
        "_sched",
        "_state",
        "_table",
        "_up",
        "delay_ms",
        "in_rate",
        "out_rate",
    )

    def __init__(self, in_rate: int, out_rate: int) -> None:
        d: FilterDesign = design(in_rate, out_rate)
        self._design = d
        self.in_rate: int = int(in_rate)
        self.out_rate: int = int(out_rate)
        self.delay_ms: float = d.delay_s * 1e3
        # The kernel follows the direction only, never the chunk: both compute the same sum
        # to float rounding (see _kernels), and a given resampler always runs the same one.
        upward = d.up > d.down
        if d.identity:
            self._table = np.zeros((1, 1), np.float32)
            self._sched = np.zeros(2, np.int64)
            self._hist = 0
        else:
            self._table, self._sched = _tables(self.in_rate, self.out_rate)
            # Inputs an output's window reaches back: K-1, or the padded Kp-1 of the dot product.
            self._hist = d.taps_per_phase - 1 if upward else int(self._table.shape[1]) - 1
        self._kernel = _kernels.resample_up if upward else _kernels.resample_down
        self._run = _kernels.native(self._kernel)
        self._up = d.up
        self._down = d.down
        self._identity = d.identity
        # Identity never touches the kernel: room -1 routes every chunk to the slow path.
        self._room = -1 if d.identity else 4096
        self._buf = np.zeros(self._hist + max(self._room, 0), np.float32)
        self._state = np.zeros(3, np.int64)  # the kernel's stream position: see _kernels
        self._n_in = 0  # input samples consumed since the last reset
        self._n_out = 0  # output samples emitted since the last reset

    @property
    def design(self) -> FilterDesign:
        return self._design

    @property
    def delay_samples(self) -> float:
        """Group delay in output samples (may be fractional)."""
        return self._design.delay_s * self.out_rate

    @property
    def samples_in(self) -> int:
        return self._n_in

    @property
    def samples_out(self) -> int:
        return self._n_out

    def reset(self) -> None:
        """Forget all history (start of a new, unrelated stream). Pending output is dropped."""
        self._buf[: self._hist] = 0.0
        self._state[:] = 0
        self._n_in = 0
        self._n_out = 0

    def process(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        """Consume a chunk (any length, including 0); return every output now computable."""
        # Hot path: a handful of attribute reads, one allocation, one native call. The check
        # is what the native entry relies on: exactly 1-D, C-contiguous float32 (the native
        # float32 dtype is a singleton; strides (4,) means 1-D and contiguous).
        if type(x) is not np.ndarray or x.dtype is not _F32 or x.strides != (4,):
            x = _as_f32(x)
        c = x.shape[0]
        n_in = self._n_in + c
        n_total = -((-n_in * self._up) // self._down)
        out = np.empty(n_total - self._n_out, _F32)
        if c > self._room:
            if self._identity:
                self._n_in = self._n_out = n_in
                out[:] = x
                return out
            self._run_blocks(x, out)
            return out
        self._run(self._table, self._buf, x, out, self._state, self._sched)
        self._n_in = n_in
        self._n_out = n_total
        return out

    def _run_blocks(self, x: NDArray[np.float32], out: NDArray[np.float32]) -> None:
        """A chunk larger than the buffer: grow it up to _BLOCK, cut bigger chunks in blocks."""
        c = int(x.shape[0])
        size = self._hist + min(max(c, 2 * self._room), _BLOCK)
        grown = np.zeros(size, _F32)
        grown[: self._hist] = self._buf[: self._hist]
        self._buf = grown
        self._room = size - self._hist
        written = 0
        for start in range(0, c, self._room):
            block = x[start : start + self._room]
            n_in = self._n_in + block.shape[0]
            n_total = -((-n_in * self._up) // self._down)
            n = n_total - self._n_out
            self._run(
                self._table, self._buf, block, out[written : written + n], self._state,
                self._sched,
            )
            written += n
            self._n_in = n_in
            self._n_out = n_total

    def flush(self) -> NDArray[np.float32]:
        """End of stream: return the filter's tail (the rest of the full convolution), then reset.

        Safe to call at any time; with no input since the last reset it returns an empty array.
        """
        d = self._design
        if self._identity or self._n_in == 0:
            self.reset()
            return np.zeros(0, np.float32)
        # Total length of the full convolution; depends only on n_in.
        n_full = -((-((self._n_in - 1) * d.up + d.num_taps)) // d.down)
        need = n_full - self._n_out
        # taps_per_phase zeros push the last real sample through every tap of its window.
        zeros = np.zeros(d.taps_per_phase, np.float32)
        tail = self.process(zeros)[:need]
        self.reset()
        return tail

    def process_int16(self, x: NDArray[np.int16]) -> NDArray[np.int16]:
        """PCM16 in, PCM16 out (rounded to nearest, clipped); state is shared with process()."""
        return float32_to_pcm16(self.process(pcm16_to_float32(x)))

    def flush_int16(self) -> NDArray[np.int16]:
        return float32_to_pcm16(self.flush())

    def __repr__(self) -> str:
        d = self._design
        return (
            f"Resampler({self.in_rate}, {self.out_rate}; {d.up}/{d.down}, {d.num_taps} taps, "
            f"delay {self.delay_ms:.2f} ms)"
        )


def resample(x: NDArray[np.float32], in_rate: int, out_rate: int) -> NDArray[np.float32]:
    """Whole-signal conversion: ``process(x)`` then ``flush()`` on a fresh resampler."""
    r = Resampler(in_rate, out_rate)
    head = r.process(x)
    return np.concatenate((head, r.flush()))
