"""The two timelines the echo canceller lines up, pure and synchronous (times passed in):

- ``PlaybackReference``: egress writes every frame it sent (after ducking) with the instant its
  first sample plays on egress's clock (send time + lead in steady pacing); the reference keeps
  it at 16 kHz (the project's ``Resampler``) at that sample position, zeros where nothing played.
- ``CaptureClock``: when the mic's samples were captured, from when its chunks arrive (a chunk
  arrives once captured, at its end).

``echo_path.EchoStage`` reads the first at the capture instants the second gives.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from bargein.dsp import Resampler, pcm16_to_float32
from bargein.runtime.messages import Int16Array

F32 = NDArray[np.float32]
RATE = 16000  # the reference's rate: the mic's analysis rate


class PlaybackReference:
    """What was played, at 16 kHz, by sample position ``round((t - origin) * 16000)``.

    ``write(pcm, at)``: a frame at the output rate whose first sample plays at trio time ``at``.
    A frame within one output sample of where the previous one ended continues it (one
    resampler stream, no rounding seams); anything else starts a new run there (the previous
    run's resampler tail is written first). The resampler's group delay is taken off, so a
    reference sample sits at the instant it played. ``read(pos, n)``: samples
    ``[pos, pos + n)``, zero where nothing was written or the history (``history_s``) no longer
    holds them. Later writes over the same positions win (a new turn after a cleared one).
    """

    def __init__(self, out_rate: int, origin: float, *, history_s: float = 4.0) -> None:
        self.out_rate = out_rate
        self.origin = origin
        self._resampler = Resampler(out_rate, RATE) if out_rate != RATE else None
        self._lag = round(self._resampler.delay_samples) if self._resampler else 0
        self._size = int(history_s * RATE)
        self._ring = np.zeros(self._size, np.float32)
        self._hi = 0  # one past the newest position written
        self._run_at: int | None = None  # position of the current run's first sample
        self._run_start = 0.0  # its exact (unrounded) position
        self._run_in = 0  # output-rate samples written in the current run
        self._run_out = 0  # 16 kHz samples produced in the current run
        self.frames = 0
        self.runs = 0

    def write(self, pcm: Int16Array, at: float) -> None:
        pos = (at - self.origin) * RATE
        expected = self._run_start + self._run_in * RATE / self.out_rate
        if self._run_at is None or abs(pos - expected) > RATE / self.out_rate:
            self._end_run()
            self._run_at = round(pos)
            self._run_start = float(self._run_at)
            self._run_in = self._run_out = 0
            self.runs += 1
        x = pcm16_to_float32(pcm)
        self._emit(self._resampler.process(x) if self._resampler else x)
        self._run_in += len(pcm)
        self.frames += 1

    def read(self, pos: int, n: int) -> F32:
        out = np.zeros(n, np.float32)
        lo = max(pos, self._hi - self._size, 0)
        hi = min(pos + n, self._hi)
        if lo < hi:
            out[lo - pos : hi - pos] = self._get(lo, hi)
        return out

    @property
    def written_to(self) -> int:
        """One past the newest sample position written."""
        return self._hi

    def _end_run(self) -> None:
        if self._resampler is not None and self._run_at is not None:
            self._emit(self._resampler.flush())  # the last frame's filter tail; resets it

    def _emit(self, y: F32) -> None:
        assert self._run_at is not None
        start = self._run_at + self._run_out - self._lag
        self._run_out += y.shape[0]
        if start < 0:
            y = y[-start:]
            start = 0
        if y.shape[0]:
            self._put(start, y)

    def _put(self, start: int, y: F32) -> None:
        end = start + y.shape[0]
        if end <= self._hi - self._size:
            return  # older than the history holds
        if start > self._hi:  # nothing played in between: zeros
            gap_lo = max(self._hi, start - self._size)
            self._set(gap_lo, np.zeros(start - gap_lo, np.float32))
        if y.shape[0] > self._size:
            y, start = y[-self._size :], end - self._size
        self._set(start, y)
        self._hi = max(self._hi, end)

    def _set(self, start: int, y: F32) -> None:
        i = start % self._size
        k = min(y.shape[0], self._size - i)
        self._ring[i : i + k] = y[:k]
        self._ring[: y.shape[0] - k] = y[k:]

    def _get(self, lo: int, hi: int) -> F32:
        i, n = lo % self._size, hi - lo
        k = min(n, self._size - i)
        if k == n:
            return self._ring[i : i + n]
        return np.concatenate((self._ring[i:], self._ring[: n - k]))


class CaptureClock:
    """Trio time at which input sample 0 was captured, from chunk arrivals.

    A chunk is taken to arrive when its last sample has been captured (true for the research
    harness and for a local sound card; a network adds its delay, which only makes the echo
    arrive later than the reference says: the canceller's bulk delay absorbs up to 500 ms).
    Each chunk gives an estimate ``now - samples_so_far / rate``; the earliest one is kept (the
    chunk with the least transport delay), so network jitter does not move the mapping. An
    estimate more than ``reanchor_s`` later than the kept one means the stream was not
    continuous (the client paused, chunks were dropped): the mapping moves there.
    """

    def __init__(self, input_rate: int, *, reanchor_s: float = 0.3) -> None:
        self.input_rate = input_rate
        self.reanchor_s = reanchor_s
        self.origin: float | None = None
        self.samples = 0
        self.reanchors = 0

    def arrived(self, samples: int, now: float) -> None:
        self.samples += samples
        estimate = now - self.samples / self.input_rate
        if self.origin is None or estimate < self.origin:
            self.origin = estimate
        elif estimate - self.origin > self.reanchor_s:
            self.origin = estimate
            self.reanchors += 1
