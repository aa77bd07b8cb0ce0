"""MFCCs and their Gaussian statistics: the classical speaker cues of a short utterance.

Frames of 25 ms every 10 ms (400/160 samples at 16 kHz, the Whisper features' geometry), a
periodic Hann window, the 400-point power spectrum, the 80 Slaney mel filters of
`bargein.decide.features` (one filterbank in the project), natural log, an orthonormal DCT-II;
c0 (the frame's level) is dropped, so a gain on the input does not move the coefficients
(only where a quiet input reaches the log floor). Frames quieter than `VOICED_DBFS` are left
out of the statistics: pauses carry no voice.

`MfccStream` is chunk-invariant: fed any split of the same samples it yields the same frames
as `mfcc` on the whole (frame i always covers samples [160 i, 160 i + 400)). `Gaussian` holds
the running count, sum and sum of outer products of the frames, so a voice is calibrated from
any number of utterances without keeping them. `glr` and `diag_kl` compare two of them
symmetrically; `mahalanobis` and `llr` judge an utterance against a calibrated voice (its
model), which separates best on a second of speech (docs/research.md, "Whose voice is it").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from bargein.decide.features import HOP, WINDOW, mel_filters

__all__ = ["CEPS", "SHRINK", "VOICED_DBFS", "Gaussian", "MfccStream", "diag_kl", "glr", "llr",
           "mahalanobis", "mfcc"]

CEPS = 19  # c1..c19
VOICED_DBFS = -60.0
_MELS = 80
_FLOOR = 1e-10

F64 = NDArray[np.float64]


@lru_cache(maxsize=1)
def _dct() -> F64:
    """(CEPS, 80) rows 1..CEPS of the orthonormal DCT-II."""
    n = np.arange(_MELS)
    k = np.arange(1, CEPS + 1)[:, None]
    out: F64 = np.sqrt(2.0 / _MELS) * np.cos(np.pi * k * (2 * n + 1) / (2 * _MELS))
    return out


@lru_cache(maxsize=1)
def _hann() -> F64:
    out: F64 = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)
    return out


def _frames_mfcc(frames: F64) -> tuple[F64, F64]:
    """(n, 400) samples in [-1, 1] -> ((n, CEPS) MFCCs, (n,) frame levels in dBFS)."""
    level = 10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    power = np.abs(np.fft.rfft(frames * _hann(), axis=1)) ** 2
    mel = np.log(np.maximum(power @ mel_filters().T, _FLOOR))
    out: F64 = mel @ _dct().T
    return out, level


def frame_mfcc(pcm: NDArray[np.int16], frame: int) -> tuple[F64, F64]:
    """One MFCC vector per whole `frame`-sample frame (the floor's 20 ms frames: a Hann window
    over the frame, zero-padded to the 400-point FFT) and each frame's level (dBFS): the
    runtime's framing, aligned with `side_talk.frame_shapes`. Every frame, voiced or not."""
    n = len(pcm) // frame
    if n == 0:
        return np.zeros((0, CEPS)), np.zeros(0)
    x = pcm[: n * frame].reshape(n, frame).astype(np.float64) / 32768.0
    level = 10.0 * np.log10(np.mean(x**2, axis=1) + 1e-12)
    w = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(frame) / frame)
    power = np.abs(np.fft.rfft(x * w, WINDOW, axis=1)) ** 2
    ceps: F64 = np.log(np.maximum(power @ mel_filters().T, _FLOOR)) @ _dct().T
    return ceps, level


def mfcc(pcm: NDArray[np.int16], voiced_only: bool = True) -> F64:
    """(frames, CEPS) MFCCs of the whole frames of `pcm` (16 kHz), voiced ones by default."""
    x = np.asarray(pcm, np.float64) / 32768.0
    if x.ndim != 1:
        raise ValueError(f"expected mono samples, got shape {x.shape}")
    if len(x) < WINDOW:
        return np.zeros((0, CEPS))
    frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP]
    ceps, level = _frames_mfcc(frames)
    return ceps[level >= VOICED_DBFS] if voiced_only else ceps


@dataclass
class MfccStream:
    """Feed 16 kHz PCM16 in chunks of any size; each call returns the voiced MFCC frames that
    became complete (the same frames `mfcc` gives on the concatenation)."""

    voiced_only: bool = True
    _tail: F64 = field(default_factory=lambda: np.zeros(0))

    def feed(self, pcm: NDArray[np.int16]) -> F64:
        x = np.concatenate((self._tail, np.asarray(pcm, np.float64) / 32768.0))
        n = 0 if len(x) < WINDOW else (len(x) - WINDOW) // HOP + 1
        self._tail = x[n * HOP :]
        if n == 0:
            return np.zeros((0, CEPS))
        frames = np.lib.stride_tricks.sliding_window_view(x, WINDOW)[::HOP][:n]
        ceps, level = _frames_mfcc(frames)
        return ceps[level >= VOICED_DBFS] if self.voiced_only else ceps


@dataclass
class Gaussian:
    """Running full-covariance statistics of frames (MFCCs by default: `CEPS` wide; another
    width when constructed with zeros of it)."""

    n: int = 0
    total: F64 = field(default_factory=lambda: np.zeros(CEPS))
    outer: F64 = field(default_factory=lambda: np.zeros((CEPS, CEPS)))

    def add(self, frames: F64) -> None:
        dim = len(self.total)
        if frames.ndim != 2 or frames.shape[1] != dim:
            raise ValueError(f"expected (n, {dim}) frames, got {frames.shape}")
        self.n += len(frames)
        self.total = self.total + frames.sum(axis=0)
        self.outer = self.outer + frames.T @ frames

    def mean(self) -> F64:
        if self.n == 0:
            raise ValueError("no frames")
        out: F64 = self.total / self.n
        return out

    def cov(self, ridge: float = 1e-3, shrink: float = 0.0) -> F64:
        """The covariance, its off-diagonal terms scaled by 1 - `shrink`, with `ridge` × its
        mean variance added on the diagonal (a second of speech is 50-100 frames for 190 free
        parameters: without these the matrix can be singular)."""
        m = self.mean()
        c = self.outer / self.n - np.outer(m, m)
        c = (1.0 - shrink) * c + shrink * np.diag(np.diag(c))
        dim = len(m)
        out: F64 = c + ridge * float(np.trace(c)) / dim * np.eye(dim)
        return out

    def merged(self, other: Gaussian) -> Gaussian:
        return Gaussian(self.n + other.n, self.total + other.total, self.outer + other.outer)


def _logdet(c: F64) -> float:
    return float(np.linalg.slogdet(c)[1])


def glr(a: Gaussian, b: Gaussian) -> float:
    """The generalized likelihood ratio per frame of "two voices" over "one voice" (BIC
    diarization's distance): 0 for identical statistics, larger the more they differ."""
    both = a.merged(b)
    n = both.n
    return 0.5 * (n * _logdet(both.cov()) - a.n * _logdet(a.cov()) - b.n * _logdet(b.cov())) / n


def diag_kl(a: Gaussian, b: Gaussian) -> float:
    """The symmetric Kullback-Leibler divergence of the two diagonal Gaussians, per dimension."""
    ma, mb = a.mean(), b.mean()
    va, vb = np.diag(a.cov()), np.diag(b.cov())
    d = (ma - mb) ** 2
    return float(np.mean(0.5 * ((va + d) / vb + (vb + d) / va) - 1.0))


# Half-way to the diagonal: a voice calibrated on 1.5 s then separates as well as on 2.5 s
# (bench/voice_separation.py: equal error rate at 1 s 8.9 % vs 16.8 % unshrunk).
SHRINK = 0.5


def mahalanobis(voice: Gaussian, utterance: Gaussian, shrink: float = SHRINK) -> float:
    """The utterance's mean MFCC from the voice's mean, in the voice's own covariance
    (shrunk towards its diagonal), per dimension: small for the same speaker."""
    d = utterance.mean() - voice.mean()
    return float(d @ np.linalg.solve(voice.cov(shrink=shrink), d)) / len(d)


def llr(voice: Gaussian, utterance: Gaussian) -> float:
    """How much worse the voice's Gaussian explains the utterance's frames than the
    utterance's own Gaussian does (mean negative log-likelihood per frame, nats): >= 0."""
    cv, cu = voice.cov(), utterance.cov()
    mu = utterance.mean()
    scatter = utterance.outer / utterance.n - np.outer(mu, mu)
    d = mu - voice.mean()
    nll_voice = 0.5 * (_logdet(cv) + np.trace(np.linalg.solve(cv, scatter))
                       + d @ np.linalg.solve(cv, d))
    nll_own = 0.5 * (_logdet(cu) + np.trace(np.linalg.solve(cu, scatter)))
    return float(nll_voice - nll_own)
