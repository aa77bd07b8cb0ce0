"""Spectral evidence of an echo through a reverberant room: does the microphone's fine spectrum,
frame by frame, follow what we played as a room would smear it?

``waveform_match`` (``echo_match``) finds a direct-path echo from 40 ms of samples, but a diffuse
room whose tail carries more energy than its direct path (the research harness's RT60 300-400 ms
rooms: +13 dB) explains the mic at no single delay. What a room keeps is the played voice's
*spectro-temporal pattern*: the harmonics of its pitch at their frequencies, rising and falling
as it spoke, each frame's power spread over the following frames by the room's energy decay.
So each 20 ms frame's power spectrum (125 Hz-4 kHz, 31 Hz bins) of what played goes through a
few exponential energy decays (``DECAYS``: none, and 20 ms frames retaining 0.5-0.9 of the
energy, i.e. RT60 up to ~1.3 s), and the last ``n`` mic frames' log spectra are correlated with
those predictions at every delay 0..``max_lag`` frames. Both are *double-centred* (each frame's
mean log power and each bin's mean over the ``n`` frames removed): the frame mean is the level
(which the room and the loudspeaker change), the bin mean the room's and microphone's colouring
and the common speech tilt; what is left is the pitch's harmonics and how they move, which
another talker does not share. Measured on the research scenarios (docs/dsp.md, "Spectral
evidence"): espeak's echo in the two reverberant rooms 0.45-0.9 after 8-10 frames, a direct-path
echo 0.7-1.0; a user's onset over our voice (31 scenarios, scripted voice, 62 onsets) at most
0.27 after 3 frames and 0.22 after 5 or more.

Pure numpy, one call per 20 ms analysis frame (the mic stage's frames are chunk-invariant
already): ``push`` costs two 512-point real FFTs and the decay updates; ``match`` is only called
in the first frames of a mic onset over our voice.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

F32 = NDArray[np.float32]
F64 = NDArray[np.float64]

DECAYS = (0.0, 0.5, 0.7, 0.8, 0.9)  # energy kept per 20 ms frame by the candidate room decays
FFT = 512
LO_BIN, HI_BIN = 4, 129  # 125 Hz .. 4 kHz at 16 kHz
FLOOR = 1e-6  # a bin's power floor relative to its frame's loudest bin (-60 dB)


def _power(x: F32, window: F64) -> F64:
    spec = np.fft.rfft(window * x.astype(np.float64), FFT)[LO_BIN:HI_BIN]
    p: F64 = spec.real * spec.real + spec.imag * spec.imag
    return p


def _log(p: F64) -> F64:
    """Log power with a floor ``FLOOR`` below each frame's (row's) loudest bin."""
    top = p.max(axis=-1, keepdims=True)
    out: F64 = np.log(np.maximum(p, np.maximum(top * FLOOR, 1e-20)))
    return out


def _double_centre(x: F64) -> F64:
    """Remove each frame's (axis -2 row's) and each bin's (axis -1 column's) mean."""
    x = x - x.mean(axis=-1, keepdims=True)
    out: F64 = x - x.mean(axis=-2, keepdims=True)
    return out


class SpectralMatch(NamedTuple):
    """The best hypothesis (one decay, one delay) for the last frames of the mic."""

    score: float  # correlation of the double-centred log spectra (the fine structure)
    lag: int  # its delay, in frames
    level: float  # correlation of the frames' mean log power (the level's rise and fall) there


NO_MATCH = SpectralMatch(0.0, 0, 0.0)


class SpectralEvidence:
    """Per analysis frame of ``frame_samples`` (20 ms at 16 kHz): ``push(far, near)``, then, in
    the first frames of a mic onset, ``match(n) -> SpectralMatch``: the best correlation of the
    last ``n`` mic frames with what played through one of ``DECAYS`` at one delay of
    ``lag`` frames (0..``max_lag``), and how the level follows there. ``NO_MATCH`` when nothing
    played in reach or the mic is flat."""

    def __init__(
        self, frame_samples: int = 320, *, max_lag: int = 25, max_frames: int = 10
    ) -> None:
        if frame_samples < 8 or frame_samples > FFT:
            raise ValueError(f"frame_samples must be 8..{FFT}, got {frame_samples}")
        if max_lag < 0 or max_frames < 2:
            raise ValueError(f"need max_lag >= 0 and max_frames >= 2, got {max_lag}, {max_frames}")
        self.frame_samples = frame_samples
        self.max_lag = max_lag
        self.max_frames = max_frames
        bins = HI_BIN - LO_BIN
        self._window: F64 = np.hanning(frame_samples)
        self._acc = np.zeros((len(DECAYS), bins), np.float64)  # far power through each decay
        # DECAYS are per 20 ms: the same room whatever the frame length.
        self._decay = np.asarray(DECAYS, np.float64)[:, None] ** (frame_samples / 320)
        # Rings, written at `_head` (the oldest) once per frame and put in order only by
        # `match`: the predictions' log spectra with each frame's mean removed, their squared
        # norms and those means; the mic's log spectra (`_mic_head`).
        size = max_lag + max_frames
        self._pred = np.zeros((len(DECAYS), size, bins), np.float64)
        self._pred_sq = np.zeros((len(DECAYS), size), np.float64)
        self._pred_level = np.zeros((len(DECAYS), size), np.float64)
        self._mic = np.zeros((max_frames, bins), np.float64)
        self._played = np.zeros(size, np.bool_)  # something played in that frame
        self._cols = np.arange(max_frames)
        self._head = self._mic_head = 0
        self._idle = False

    def pause(self) -> None:
        """Frames will not be pushed for a while (an echo is found): start clean after."""
        self._idle = True

    def push(self, far: F32, near: F32) -> None:
        """One frame of what played (``far``) and what the mic heard (``near``)."""
        n = self.frame_samples
        if far.shape[0] != n or near.shape[0] != n:
            raise ValueError(f"frames must be {n} samples, got {far.shape[0]} and {near.shape[0]}")
        playing = bool(np.any(far))
        if not playing and not self._played.any():  # nothing in reach: nothing to compare
            self._idle = True
            return
        if self._idle:  # our voice again after a silence longer than the rings: start clean
            self._idle = False
            for ring in (self._acc, self._pred, self._pred_sq, self._pred_level, self._mic):
                ring[:] = 0.0
        fp = _power(far, self._window) if playing else np.zeros(self._acc.shape[1])
        self._acc *= self._decay
        self._acc += fp
        lg = _log(self._acc)
        level = lg.mean(axis=-1)
        lg -= level[:, None]
        at = self._head
        self._pred[:, at] = lg
        self._pred_sq[:, at] = np.einsum("hb,hb->h", lg, lg)
        self._pred_level[:, at] = level
        self._played[at] = playing
        self._head = (at + 1) % self._played.shape[0]
        self._mic[self._mic_head] = _log(_power(near, self._window))
        self._mic_head = (self._mic_head + 1) % self.max_frames

    def match(self, frames: int) -> SpectralMatch:
        """The best hypothesis over the last ``frames`` mic frames (2..``max_frames``)."""
        if not 2 <= frames <= self.max_frames:
            raise ValueError(f"frames must be 2..{self.max_frames}, got {frames}")
        mic = np.roll(self._mic, -self._mic_head, axis=0)[-frames:]
        x = _double_centre(mic)
        xx = float(np.einsum("ij,ij->", x, x))
        if xx <= 1e-12:
            return NO_MATCH
        total = self._pred.shape[1]
        head = self._head  # the rings in order, oldest first
        pred = np.roll(self._pred, -head, axis=1)
        pred_sq = np.roll(self._pred_sq, -head, axis=1)
        pred_level = np.roll(self._pred_level, -head, axis=1)
        # Delay d: mic frame i against prediction frame starts[d] + i.
        starts = total - frames - np.arange(self.max_lag + 1)
        in_order = np.roll(self._played, -head)
        played = np.lib.stride_tricks.sliding_window_view(in_order, frames)[starts].any(axis=1)
        if not played.any():
            return NO_MATCH
        rows = starts[:, None] + self._cols[None, :frames]  # (lags, frames)
        # <x, y> over the window: x's bin means are 0, so y's need not be removed for it.
        g = np.tensordot(pred, x, axes=([2], [1]))  # (decays, ring, frames): x_i . y_t
        xy = g[:, rows, self._cols[None, :frames]].sum(axis=-1)  # (decays, lags)
        # |y|^2 with its bin means over the window removed: sum |y_t|^2 - |sum y_t|^2 / n.
        zero = np.zeros((pred.shape[0], 1), np.float64)
        cq = np.concatenate((zero, np.cumsum(pred_sq, axis=1)), axis=1)
        cs = np.concatenate((zero[:, :, None].repeat(pred.shape[2], axis=2),
                             np.cumsum(pred, axis=1)), axis=1)  # fmt: skip
        col = cs[:, starts + frames] - cs[:, starts]  # (decays, lags, bins)
        total_sq = cq[:, starts + frames] - cq[:, starts]
        yy = total_sq - np.einsum("hdb,hdb->hd", col, col) / frames
        corr = xy / np.sqrt(np.maximum(yy, 1e-30) * xx)
        # A prediction that does not change over the window (our voice fading out: the same
        # decaying spectrum frame after frame) has no pattern to follow; its variance is
        # also where the running sums above lose their precision.
        corr[yy <= 1e-3 * total_sq] = 0.0
        corr[:, ~played] = 0.0  # a delay reaching back before our voice: no likeness
        h, d = np.unravel_index(int(np.argmax(corr)), corr.shape)
        # The same hypothesis's level: an echo's rises and falls with what played, smeared.
        lx = mic.mean(axis=-1)
        ly = pred_level[h, rows[d]]
        lx, ly = lx - lx.mean(), ly - ly.mean()
        den = float(np.sqrt(float(lx @ lx) * float(ly @ ly)))
        level = float(lx @ ly) / den if den > 1e-12 else 0.0
        return SpectralMatch(float(corr[h, d]), int(d), level)
