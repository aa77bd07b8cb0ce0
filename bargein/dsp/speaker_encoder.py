"""A trained speaker embedding in numpy: Resemblyzer's GE2E d-vector encoder, without torch.

The model is the file ``resemblyzer/pretrained.pt`` inside the ``Resemblyzer`` wheel
(Apache-2.0, 0.1.4), installed with ``pip install --no-deps`` (its torch, librosa and webrtcvad
are not ours); only the file is read, found through the distribution's file list
(``importlib.metadata``), its tensors by `bargein.dsp.speaker_weights`. ``unavailable_reason()``
says why it cannot run; ``SpeakerEncoder()`` raises ``SpeakerEncoderUnavailable``.

What Resemblyzer 0.1.4 computes, step by step (``voice_encoder.py``, ``audio.py``,
``hparams.py``), and so what this does:

- volume: ``normalize_volume(wav, -30 dBFS, increase_only=True)`` (its ``preprocess_wav``;
  its webrtcvad silence trimming is not ported: the runtime hands over speech);
- partials: windows of 160 frames (1.6 s) every ``round(16000 / 1.3 / 160)`` = 77 frames
  over the utterance, the last kept when it covers >= 75 % (always one), the audio
  zero-padded to the last window's end;
- mel: ``librosa.feature.melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40)``
  with librosa's defaults: a centered STFT (200 zeros each side: librosa >= 0.10 pads with
  zeros), periodic Hann, the power spectrum (not log), 40 Slaney mel filters (htk=False,
  norm='slaney', `bargein.decide.features.mel_filters`);
- network: a 3-layer LSTM (40 -> 256 -> 256 -> 256, PyTorch's gate order i, f, g, o, both
  biases), the last layer's final hidden state, a 256x256 linear layer, ReLU, L2 norm; the
  utterance's embedding is the L2-normed mean of its partials'.

Cost: the recurrence is 160 steps x 3 layers of two (partials, <= 256) x (<= 256, 1024)
products, all partials of an utterance in one batch; float32, as the model was trained. No
product is large enough for OpenBLAS to run on threads (whose spinning would bill the other
core): about 5 / 10 / 16 ms of one core for 0.4 / 1 / 1.6 s (docs/research.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bargein.decide.features import HOP, RATE, WINDOW, apply_mel
from bargein.dsp.speaker_weights import load_checkpoint
from bargein.wheel_files import locate_in_wheel

__all__ = ["DISTRIBUTION", "MODEL_PATH", "Lstm", "SpeakerEncoder", "SpeakerEncoderUnavailable",
           "cosine_distance", "locate_model", "mel_spectrogram", "normalize_volume",
           "partial_slices", "shared_encoder", "unavailable_reason"]  # fmt: skip

DISTRIBUTION = "Resemblyzer"
MODEL_PATH = "resemblyzer/pretrained.pt"
MELS = 40
PARTIAL_FRAMES = 160  # 1.6 s
PARTIAL_RATE = 1.3  # partials per second (embed_utterance's default)
MIN_COVERAGE = 0.75
TARGET_DBFS = -30.0
INT16_MAX = 2**15 - 1

F32 = NDArray[np.float32]


class SpeakerEncoderUnavailable(RuntimeError):
    """The optional model cannot run here; the message says what to install."""


def locate_model() -> Path:
    """``pretrained.pt`` inside the installed Resemblyzer wheel."""
    return locate_in_wheel(
        DISTRIBUTION, MODEL_PATH, SpeakerEncoderUnavailable, "the speaker encoder's weights",
        f"pip install --no-deps '{DISTRIBUTION.lower()}==0.1.4'",
    )


def unavailable_reason() -> str | None:
    """None when ``SpeakerEncoder()`` can load, else why not."""
    try:
        locate_model()
    except SpeakerEncoderUnavailable as e:
        return str(e)
    return None


def normalize_volume(wav: F32, target_dbfs: float = TARGET_DBFS) -> F32:
    """Raise (never lower) the level to ``target_dbfs`` RMS, as Resemblyzer's
    ``normalize_volume(..., increase_only=True)``; samples in [-1, 1]."""
    rms = math.sqrt(float(np.mean((wav.astype(np.float64) * INT16_MAX) ** 2)))
    if rms <= 0.0:
        return wav
    change = target_dbfs - 20.0 * math.log10(rms / INT16_MAX)
    if change < 0:
        return wav
    out: F32 = (wav * np.float32(10 ** (change / 20))).astype(np.float32)
    return out


def partial_slices(n_samples: int, rate: float = PARTIAL_RATE,
                   min_coverage: float = MIN_COVERAGE) -> list[tuple[int, int]]:
    """The mel-frame ranges [a, a + 160) of an utterance's partials
    (``VoiceEncoder.compute_partial_slices``)."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((RATE / rate) / HOP))
    steps = max(1, n_frames - PARTIAL_FRAMES + step + 1)
    out = [(i, i + PARTIAL_FRAMES) for i in range(0, steps, step)]
    last = out[-1]
    coverage = (n_samples - last[0] * HOP) / ((last[1] - last[0]) * HOP)
    if coverage < min_coverage and len(out) > 1:
        out = out[:-1]
    return out


@lru_cache(maxsize=1)
def _hann32() -> F32:
    out: F32 = (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(WINDOW) / WINDOW)).astype(np.float32)
    return out


def mel_spectrogram(wav: F32) -> F32:
    """(frames, 40) mel power, frame i centred on sample 160 i (1 + len // 160 frames)."""
    pad = WINDOW // 2
    y = np.concatenate((np.zeros(pad, np.float32), wav.astype(np.float32),
                        np.zeros(pad, np.float32)))
    n = 1 + (len(y) - WINDOW) // HOP
    frames = np.lib.stride_tricks.as_strided(y, shape=(n, WINDOW),
                                             strides=(y.strides[0] * HOP, y.strides[0]))
    spec = np.fft.rfft(frames * _hann32(), axis=1)
    power = (spec.real**2 + spec.imag**2).astype(np.float32)
    out: F32 = np.ascontiguousarray(apply_mel(power, MELS).T, np.float32)  # no BLAS threads
    return out


def _sigmoid(x: F32) -> F32:
    out: F32 = 0.5 * (np.tanh(0.5 * x) + 1.0)  # = 1 / (1 + e^-x), without overflow
    return out


@dataclass(frozen=True)
class Lstm:
    """PyTorch ``nn.LSTM`` (batch_first) weights, stored transposed for row-vector products:
    per layer ``w_ih_t`` (in, 4H), ``w_hh_t`` (H, 4H) and the sum of its two biases (4H,);
    gates in the order i, f, g, o (``from_torch`` takes PyTorch's shapes)."""

    w_ih_t: tuple[F32, ...]
    w_hh_t: tuple[F32, ...]
    bias: tuple[F32, ...]

    @classmethod
    def from_torch(cls, layers: list[tuple[F32, F32, F32, F32]]) -> Lstm:
        """From ``(weight_ih, weight_hh, bias_ih, bias_hh)`` per layer, PyTorch's shapes."""

        def t(w: F32) -> F32:
            out: F32 = np.ascontiguousarray(np.asarray(w, np.float32).T)
            return out

        return cls(tuple(t(w) for w, _, _, _ in layers), tuple(t(w) for _, w, _, _ in layers),
                   tuple(np.asarray(a, np.float32) + np.asarray(b, np.float32)
                         for _, _, a, b in layers))  # fmt: skip

    @property
    def hidden(self) -> int:
        return int(self.w_hh_t[0].shape[0])

    @staticmethod
    def step(gates_x: F32, h: F32, c: F32, w_hh_t: F32) -> tuple[F32, F32]:
        """One time step: ``gates_x`` = x W_ih^T + b (batch, 4H) -> new (h, c)."""
        n = h.shape[1]
        g = gates_x + h @ w_hh_t
        i, f = _sigmoid(g[:, :n]), _sigmoid(g[:, n : 2 * n])
        cell, o = np.tanh(g[:, 2 * n : 3 * n]), _sigmoid(g[:, 3 * n :])
        c2: F32 = f * c + i * cell
        h2: F32 = o * np.tanh(c2)
        return h2, c2

    def run(self, x: F32) -> F32:
        """(batch, time, in) -> the last layer's final hidden state (batch, H)."""
        seq = x.astype(np.float32)
        batch, steps = seq.shape[0], seq.shape[1]
        h = np.zeros((batch, self.hidden), np.float32)
        for w_ih_t, w_hh_t, bias in zip(self.w_ih_t, self.w_hh_t, self.bias, strict=True):
            h = np.zeros((batch, self.hidden), np.float32)
            c = np.zeros((batch, self.hidden), np.float32)
            out = np.empty((batch, steps, self.hidden), np.float32)
            for t in range(steps):
                # Step by step, not the input part of all steps in one product: OpenBLAS runs
                # that product on threads whose spinning afterwards doubled the CPU per
                # embedding (29 against 15 ms for 1 s); products of <= 256 rows stay on one.
                h, c = self.step(seq[:, t] @ w_ih_t + bias, h, c, w_hh_t)
                out[:, t] = h
            seq = out
        return h


def cosine_distance(a: F32, b: F32) -> float:
    """1 - cos(a, b): 0 for the same direction (embeddings are L2-normed)."""
    return float(1.0 - float(a @ b) / (float(np.linalg.norm(a) * np.linalg.norm(b)) + 1e-12))


class SpeakerEncoder:
    """The loaded model; ``embed(pcm)`` -> a 256-d L2-normed d-vector (16 kHz mono)."""

    def __init__(self, model: Path | None = None) -> None:
        path = model or locate_model()
        state: dict[str, Any] = load_checkpoint(path)["model_state"]
        layers = 0
        while f"lstm.weight_ih_l{layers}" in state:
            layers += 1
        if not layers:
            raise SpeakerEncoderUnavailable(f"{path}: no LSTM weights in model_state")

        def f32(name: str) -> F32:
            out: F32 = np.ascontiguousarray(state[name], np.float32)
            return out

        self.lstm = Lstm.from_torch([
            tuple(f32(f"lstm.{kind}_l{k}") for kind in ("weight_ih", "weight_hh", "bias_ih",
                                                        "bias_hh"))  # type: ignore[misc]
            for k in range(layers)])  # fmt: skip
        self.linear_t = np.ascontiguousarray(f32("linear.weight").T)
        self.linear_b = f32("linear.bias")

    def embed_mels(self, mels: F32) -> F32:
        """(partials, frames, 40) -> (partials, 256) L2-normed embeddings (``forward``)."""
        raw = np.maximum(self.lstm.run(mels) @ self.linear_t + self.linear_b, 0.0)
        out: F32 = (raw / np.linalg.norm(raw, axis=1, keepdims=True)).astype(np.float32)
        return out

    def embed_utterance(self, wav: F32) -> F32:
        """``VoiceEncoder.embed_utterance(wav)`` on samples in [-1, 1] as given: an utterance
        shorter than 1.6 s is zero-padded to one partial."""
        slices = partial_slices(len(wav))
        end = slices[-1][1] * HOP
        if end >= len(wav):
            wav = np.pad(wav, (0, end - len(wav)))
        mel = mel_spectrogram(wav)
        parts = self.embed_mels(np.stack([mel[a:b] for a, b in slices]))
        mean = parts.mean(axis=0)
        out: F32 = (mean / np.linalg.norm(mean)).astype(np.float32)
        return out

    def embed(self, pcm: NDArray[np.int16]) -> F32:
        """An utterance's d-vector: int16 -> [-1, 1], volume raised to -30 dBFS; up to 1.6 s
        one partial of its own frames (no zero padding: the LSTM's state at the end of the
        speech, not after silence; on the shared recordings the EER at 0.5 s fell from 0.15 to
        0.10 and at 1 s from 0.08 to 0.06, docs/research.md), longer as `embed_utterance`."""
        wav = normalize_volume(pcm.astype(np.float32) / 32768.0)
        mel = mel_spectrogram(wav)
        if len(mel) > PARTIAL_FRAMES:
            return self.embed_utterance(wav)
        out: F32 = self.embed_mels(mel[None])[0]
        return out


@lru_cache(maxsize=1)
def shared_encoder() -> SpeakerEncoder:
    """One loaded model per process (5.7 MB of float32 weights), read on first use."""
    return SpeakerEncoder()
