"""Acoustic echo canceller: removes what we played (the far-end reference) from the microphone.

Alignment assumed: far sample ``i`` is what was played (sent to the speaker) at the instant
near sample ``i`` was captured, up to a constant *bulk delay* of 0..``max_delay_ms`` by which
the echo arrives later than the reference says (playout buffers, the room). The canceller
estimates that delay itself (envelope cross-correlation, see ``DelayEstimator``) and then
adapts a filter starting there, ``min_tail_ms`` long at first, which grows (and shrinks) to
the room's response as the filter finds it, up to ``tail_ms``. An echo that reaches the
microphone *before* its reference is fed cannot be cancelled (the filter is causal): feed the
reference no later than the microphone samples it echoes into.

Streaming: the canceller works in blocks of ``block`` samples (default 4 ms: 64 at 16 kHz).
After ``T`` samples fed, exactly ``floor(T / block) * block`` cleaned samples have been
returned, whatever the chunking (20 ms chunks at 16 kHz hold nothing back), and the output is
bit-identical for any chunking (each decision is taken per block; see ``_echo_kernels``).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bargein.dsp import _echo_kernels as K
from bargein.dsp import _fft
from bargein.dsp._fft import real_fft_plan
from bargein.dsp.echo_delay import DelayEstimator
from bargein.dsp.pcm import float32_to_pcm16, pcm16_to_float32

F64 = NDArray[np.float64]

__all__ = ["DelayEstimator", "EchoCanceller", "EchoStats", "warm_up_echo"]


@dataclass(frozen=True)
class EchoStats:
    """Counters since construction (blocks of ``block`` samples)."""

    blocks: int
    adapted_blocks: int  # blocks in which the background filter adapted
    double_talk_blocks: int  # blocks with adaptation frozen by the double-talk detector
    foreground_updates: int  # background copied to foreground (it was clearly better)
    background_resets: int  # foreground copied back over a diverged background
    delay_changes: int  # bulk delay re-estimated to a new value (the filters restart)
    delay_samples: int  # current bulk delay applied to the reference
    active_partitions: int  # the filter's current length, in blocks
    tail_grown: int  # times the filter grew (by 16 ms) to reach the room's tail
    tail_shrunk: int  # ... and shrank back


class EchoCanceller:
    """Two-path PBFDAF echo canceller with double-talk detection and bulk delay estimation.

    ``process(near, far) -> cleaned`` (float samples, same length), ``process_int16`` for PCM16,
    or ``far(reference)`` whenever egress plays something and ``near(mic) -> cleaned`` as the
    microphone delivers (the reference queue is consumed sample for sample; missing
    reference counts as silence).
    """

    def __init__(
        self,
        rate: int = 16000,
        *,
        tail_ms: float = 512.0,
        min_tail_ms: float = 128.0,
        block: int | None = None,
        max_delay_ms: float = 500.0,
        delay_ms: float | None = None,
        mu: float = 1.0,
    ) -> None:
        if not isinstance(rate, int) or not 8000 <= rate <= 48000:
            raise ValueError(f"rate must be an int in 8000..48000, got {rate!r}")
        if block is None:
            block = 1 << max(2, round(math.log2(rate * 0.004)))
        if block < 8 or block & (block - 1):
            raise ValueError(f"block must be a power of two >= 8, got {block}")
        if not 0.0 < mu <= 1.0:
            raise ValueError(f"mu must be in (0, 1], got {mu}")
        if tail_ms <= 0 or min_tail_ms <= 0 or max_delay_ms < 0:
            raise ValueError("tail_ms and min_tail_ms must be > 0 and max_delay_ms >= 0")
        self.rate = rate
        self.block = block
        self.partitions = max(1, math.ceil(tail_ms * rate / 1000 / block))
        self.tail_samples = self.partitions * block  # the longest the filter grows to
        # The filter's length at the start, and its least; the delay window is placed by it.
        self.min_partitions = min(self.partitions,
                                  max(1, math.ceil(min_tail_ms * rate / 1000 / block)))
        self.window_samples = self.min_partitions * block
        self._max_delay = round(max_delay_ms * rate / 1000)
        self._fixed_delay = delay_ms is not None
        self._delay = round((delay_ms or 0.0) * rate / 1000)
        if self._delay > self._max_delay:
            self._max_delay = self._delay
        b, p = block, self.partitions
        bins = b + 1
        plan = real_fft_plan(2 * b)
        self._plan = plan
        self._xring = np.zeros((p, bins), np.complex128)
        self._wf = np.zeros((p, bins), np.complex128)
        self._wb = np.zeros((p, bins), np.complex128)
        self._pk = np.zeros(bins, np.float64)
        self._xbuf = np.zeros(2 * b, np.float64)
        self._work = np.zeros(2 * b, np.float64)
        self._spec = np.zeros(bins, np.complex128)
        self._yspec = np.zeros(bins, np.complex128)
        self._eh = np.zeros(bins, np.float64)
        self._yh = np.zeros(bins, np.float64)
        self._step = np.zeros(bins, np.float64)
        self._prop = np.zeros(p, np.float64)  # the partitions' shares of the step
        self._prop[: self.min_partitions] = 0.99 / self.min_partitions
        params = np.zeros(K.N_PARAMS, np.float64)
        params[K.MU] = mu
        # Regularization: a far end below about -70 dBFS per bin adapts nothing.
        params[K.DELTA] = 2 * b * 1e-7 * p
        # ... and a bin's step is normalized by at least 3 % of the mean far power per bin: a
        # harmonic far end (a buzz, a held vowel) leaves bins between its harmonics with power
        # just above delta, whose steps then grew the filter there without bound (the scripted
        # TTS's echo: ERLE 21 -> 2 dB over 15 s); on speech the bench's steady ERLE moved
        # by -1.0..+2.5 dB.
        params[K.SPEC_FLOOR] = 0.03
        params[K.FAR_FLOOR] = 1e-7  # mean square: -70 dBFS
        params[K.COPY_BELOW] = 0.8
        params[K.RESET_ABOVE] = 4.0
        params[K.SMOOTH] = 0.6
        params[K.SPEC_AVG] = 0.1
        params[K.BETA0] = 2.0 * b / rate
        params[K.BETA_MAX] = 0.5 * b / rate
        params[K.DT_HOLD] = max(1, round(0.1 * rate / b))  # 100 ms
        params[K.DT_FLOOR] = 1e-6  # mean square: an error below -60 dBFS is never double talk
        # A mic below -80 dBFS (mean square) holds no echo worth learning: it neither uses up
        # the start-up step nor counts toward `converged` (see the kernel).
        params[K.NEAR_FLOOR] = 1e-8
        # Until the filter has adapted P blocks' worth, a fixed step (echo estimate too small
        # for the residual-based step to start from).
        params[K.START_RATE] = 0.5
        params[K.START_BLOCKS] = float(self.min_partitions)
        # The tail's length follows the room (see the kernel): checked every 64 ms, by 16 ms;
        # grown while the louder of its last two 16 ms holds more than -40 dB of the
        # filter's energy and is still decaying, shrunk while it holds less.
        params[K.GROW_STEP] = max(1, round(0.016 * rate / b))
        params[K.GROW_EVERY] = max(1, round(0.064 * rate / b))
        params[K.GROW_ABOVE] = 10**-3.7
        params[K.SHRINK_BELOW] = 1e-4
        params[K.MIN_ACTIVE] = self.min_partitions
        # One partition constrained per block per min_partitions active ones.
        params[K.CONSTRAIN_PERIOD] = self.min_partitions
        self._params = params
        self._fstate = np.zeros(K.N_FSTATE, np.float64)
        self._fstate[K.PEY] = self._fstate[K.PYY] = 1.0  # leak starts at 1: adapt fast
        self._fstate[K.FG_RATIO] = 1.0  # the foreground starts removing nothing
        self._istate = np.zeros(K.N_ISTATE, np.int64)
        self._istate[K.ACTIVE] = self.min_partitions
        # Far samples before the pending region (the delay line) and the partial block.
        self._far_tail = np.zeros(self._max_delay, np.float64)
        self._pend_near = np.zeros(0, np.float64)
        self._pend_far = np.zeros(0, np.float64)
        self._queue = np.zeros(0, np.float32)  # far() reference not yet matched by near()
        self._est = DelayEstimator(max(1, self._max_delay // b)) if not self._fixed_delay \
            and self._max_delay >= b else None
        self._kernel = K.aec_blocks  # tests swap in the plain function
        self._delay_changes = 0
        self._recent: deque[int] = deque(maxlen=5)  # the last bulk-delay estimates (blocks)

    # -- faces -------------------------------------------------------------------------
    def process(self, near: NDArray[np.floating], far: NDArray[np.floating]) -> NDArray[np.float32]:
        """Cancel ``far``'s echo from ``near`` (float samples, same length, any chunk size
        incl. 0); returns every cleaned sample now computable (whole blocks)."""
        n = _as_f64(near, "near")
        f = _as_f64(far, "far")
        if n.shape != f.shape:
            raise ValueError(f"near and far differ in length: {n.shape[0]} vs {f.shape[0]}")
        return self._run(n, f).astype(np.float32)

    def process_int16(self, near: NDArray[np.int16], far: NDArray[np.int16]) -> NDArray[np.int16]:
        return float32_to_pcm16(self.process(pcm16_to_float32(near), pcm16_to_float32(far)))

    def far(self, reference: NDArray[np.floating]) -> None:
        """Queue what egress played; ``near`` consumes it sample for sample."""
        self._queue = np.concatenate((self._queue, _as_f64(reference, "far").astype(np.float32)))

    def near(self, mic: NDArray[np.floating]) -> NDArray[np.float32]:
        n = _as_f64(mic, "near")
        c = n.shape[0]
        take = self._queue[:c]
        self._queue = self._queue[c:]
        f = np.zeros(c, np.float64)
        f[: take.shape[0]] = take
        return self._run(n, f).astype(np.float32)

    def flush(self) -> NDArray[np.float32]:
        """The cleaned remainder of a partial block (zero-padded through the filter)."""
        k = self._pend_near.shape[0]
        if k == 0:
            return np.zeros(0, np.float32)
        pad = np.zeros(self.block - k, np.float64)
        return self._run(pad, pad.copy())[:k].astype(np.float32)

    @property
    def delay_samples(self) -> int:
        return self._delay

    @property
    def double_talk(self) -> bool:
        """Double talk flagged within the last 100 ms: near-end speech the echo estimate
        cannot explain (see docs/dsp.md for how often it is right). Meaningful once
        ``converged``."""
        return bool(self._istate[K.HOLD] > 0)

    @property
    def converged(self) -> bool:
        """The foreground removes at least 3 dB of what the microphone hears (measured outside
        double talk)."""
        return bool(self._fstate[K.FG_RATIO] <= 0.5)

    @property
    def adapted(self) -> bool:
        """The filter has had its start-up step (``partitions`` blocks' worth): from then on
        the double-talk detector runs."""
        return bool(self._istate[K.ADAPTED_FLAG])

    @property
    def active_partitions(self) -> int:
        """The filter's current length in blocks (``min_partitions..partitions``)."""
        return int(self._istate[K.ACTIVE])

    @property
    def pending(self) -> int:
        """Near samples held back until their block is complete (< block)."""
        return int(self._pend_near.shape[0])

    def stats(self) -> EchoStats:
        s = self._istate
        return EchoStats(
            blocks=int(s[K.BLOCKS]), adapted_blocks=int(s[K.ADAPTED]),
            double_talk_blocks=int(s[K.DT_BLOCKS]), foreground_updates=int(s[K.COPIES]),
            background_resets=int(s[K.RESETS]), delay_changes=self._delay_changes,
            delay_samples=self._delay, active_partitions=int(s[K.ACTIVE]),
            tail_grown=int(s[K.GROWN]), tail_shrunk=int(s[K.SHRUNK]),
        )

    # -- internals ---------------------------------------------------------------------
    def _run(self, near: F64, far: F64) -> F64:
        b = self.block
        near = np.concatenate((self._pend_near, near))
        far = np.concatenate((self._pend_far, far))
        whole = near.shape[0] // b * b
        self._pend_near = near[whole:]
        self._pend_far = far[whole:]
        out = np.empty(whole, np.float64)
        done = 0
        while done < whole:
            # Stop at the delay estimator's next block so it runs at the same block index
            # whatever the chunking.
            blocks = (whole - done) // b
            if self._est is not None:
                every = self._est.every
                blocks = min(blocks, every - (self._istate[K.BLOCKS] % every))
            m = blocks * b
            self._blocks(near[done:done + m], far[done:done + m], out[done:done + m])
            done += m
            if self._est is not None and self._istate[K.BLOCKS] % self._est.every == 0:
                self._maybe_move_delay()
        return out

    def _blocks(self, near: F64, far: F64, out: F64) -> None:
        m = near.shape[0]
        d, tail = self._delay, self._far_tail.shape[0]
        line = np.concatenate((self._far_tail, far))
        delayed = line[tail - d: tail - d + m] if d else far
        if tail:
            self._far_tail = line[-tail:]
        p = self._plan
        self._kernel(
            near, np.ascontiguousarray(delayed), out, self._xring, self._wf, self._wb, self._pk,
            self._xbuf, self._work, self._spec, p.rev, p.tw, p.split, p.z,
            self._params, self._fstate, self._istate, self._eh, self._yh, self._step,
            self._yspec, self._prop,
        )
        if self._est is not None:
            b = self.block
            # Envelopes of the *undelayed* reference: the estimator measures the whole delay.
            fr, nr = far.reshape(-1, b), near.reshape(-1, b)
            self._est.push(np.sqrt(np.einsum("ij,ij->i", fr, fr) / b),
                           np.sqrt(np.einsum("ij,ij->i", nr, nr) / b))

    def _rebuild_ring(self, delay: int) -> None:
        """The far spectra (and the last two far blocks) as they would be had the reference
        always been delayed by ``delay``; ages the history no longer holds are zero."""
        b, p = self.block, self.partitions
        hist = self._far_tail
        t = hist.shape[0]
        head = int(self._istate[K.HEAD])
        pair = np.zeros(2 * b, np.float64)
        plan = self._plan
        for age in range(p):
            end = t - delay - age * b
            if end - 2 * b >= 0:
                pair[:] = hist[end - 2 * b : end]
                _fft.rfft(pair, self._xring[(head - age) % p], plan.rev, plan.tw, plan.split,
                          plan.z)
                if age == 0:
                    self._xbuf[:] = pair
            else:
                self._xring[(head - age) % p] = 0
                if age == 0:
                    self._xbuf[:] = 0

    def _maybe_move_delay(self) -> None:
        assert self._est is not None
        found = self._est.estimate()
        if found is None:
            return
        self._recent.append(found[0])
        if len(self._recent) < 3:
            return
        # The envelope peak jitters 0..8 blocks *after* the direct path (reverberation smears
        # it later; never earlier in the test rooms), so the earliest of the last five
        # estimates is the arrival, and the window starts a quarter of the (least) filter
        # before it: in a reverberant room the estimates land later still (the phone path of
        # heldout_f, 250 ms: 256 ms, after the direct path, with an eighth).
        self._move_for(min(self._recent) * self.block, 2 * self._margin())

    def hint_delay(self, samples: int) -> None:
        """An outside measurement of the echo's arrival (its direct path, ``samples`` after
        the reference; e.g. ``echo_match.waveform_match``): the filter's window moves there as
        it would for the estimator's, under the same conditions (not while the window already
        holds it or the foreground removes 10 dB; not with a fixed ``delay_ms``), and it
        counts as one of the estimator's recent estimates. Takes effect from the next block."""
        if self._est is None:
            return
        blocks = max(0, min(samples, self._max_delay)) // self.block
        self._recent.append(blocks)
        self._move_for(blocks * self.block, self._margin())

    def _margin(self) -> int:
        """An eighth of the least filter (16 ms), in whole blocks."""
        return max(2 * self.block, self.window_samples // 8 // self.block * self.block)

    def _move_for(self, arrival: int, margin: int) -> None:
        b = self.block
        # Keep the window while it holds the arrival at least two blocks in and at most a
        # quarter of the filter (as long as it has grown) from its start, and whenever the
        # foreground already removes 10 dB or more (it works). In a reverberant room the
        # envelope's peak lands 30-60 ms after the direct path: moved there, the window cut
        # the direct path off a grown filter (ERLE 19.6 -> 4.7 dB, RT60 600 ms).
        reach = max(self.window_samples, self.active_partitions * b) // 4
        if self._delay + 2 * b <= arrival <= self._delay + reach or \
                self._fstate[K.FG_RATIO] < 0.1 or \
                (self._istate[K.HOLD] > 0 and self._fstate[K.FG_RATIO] <= 0.5):
            # Nor during double talk, where the near end blurs the envelopes -- as far as the
            # detector can tell, which needs a foreground that removes 3 dB.
            return
        target = max(0, min(arrival - margin, self._max_delay))
        if target == self._delay:
            return
        shift = (target - self._delay) // b
        if (target - self._delay) % b == 0 and abs(shift) < self.active_partitions:
            # By whole blocks, either way, by less than the filter's length: what the filters
            # learned moves by `shift` partitions (down when the window starts later) and the
            # far-spectrum ring is rebuilt from the reference history for the new delay;
            # nothing is lost. (A longer move: the filter held none of the echo, restart.)
            p = self.partitions
            # A window starting earlier moves the response later: the filter grows with it.
            act = min(p, int(self._istate[K.ACTIVE]) + max(0, -shift))
            self._istate[K.ACTIVE] = act
            for w in (self._wf, self._wb):
                if shift > 0:
                    w[: p - shift] = w[shift:].copy()
                    w[p - shift:] = 0
                else:
                    w[-shift:] = w[: p + shift].copy()
                    w[:-shift] = 0
                w[act:] = 0  # past the active partitions the filter is zero
            self._prop[act:] = 0
            self._rebuild_ring(target)
        else:
            for a in (self._xring, self._wf, self._wb):
                a[:] = 0
            self._xbuf[:] = 0
            self._fstate[:] = 0
            self._fstate[K.PEY] = self._fstate[K.PYY] = 1.0
            self._fstate[K.FG_RATIO] = 1.0
            self._eh[:] = 0
            self._yh[:] = 0
            self._istate[K.ADAPTED_FLAG] = 0
            self._istate[K.ACTIVE] = self.min_partitions
            self._prop[:] = 0
            self._prop[: self.min_partitions] = 0.99 / self.min_partitions
        self._delay = target
        self._delay_changes += 1


def _as_f64(x: NDArray[np.floating], name: str) -> F64:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D (mono) array, got shape {a.shape}")
    if a.dtype.kind != "f":
        raise TypeError(f"{name}: expected float samples, got {a.dtype}; use process_int16()")
    return np.ascontiguousarray(a, dtype=np.float64)


def warm_up_echo() -> float:
    """Compile (or load from numba's cache) the canceller's and the ducking ramp's kernels;
    seconds spent. Call at start-up when a session may use them (``warm_up()`` does not, so
    runs without echo cancellation pay nothing)."""
    import time

    from bargein.dsp.duck import Ducker

    t0 = time.perf_counter()
    x = np.zeros(640, np.float32)
    EchoCanceller(16000).process(x, x)
    d = Ducker(16000)
    d.duck()
    d.process(x)
    return time.perf_counter() - t0
