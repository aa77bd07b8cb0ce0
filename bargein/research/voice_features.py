"""Speaker representations of a short stretch of speech from what is installed, for measuring
whether any of them tells the user's voice from another (docs/research.md, "Whose voice is it").

- ``whisper``: Whisper tiny.en's encoder (CTranslate2, the neural engines' model) over a window
  fitted to the audio (CTranslate2 accepts short inputs), its last-layer states mean- and
  std-pooled over the real frames: 768 numbers; compared by cosine distance.
- ``smart_turn_L``: the residual stream of Smart Turn v3.2's Whisper-tiny encoder after its
  layer L (the ``layer_norm_*`` tensor at that depth, exposed with `onnx_graph.with_output`;
  onnxruntime only returns graph outputs), over the last 8 s as the model takes them, pooled
  over the positions of the real audio.
- ``mfcc_maha`` / ``mfcc_llr``: `bargein.dsp.mfcc` statistics, the utterance judged against
  the reference's Gaussian (asymmetric: `distance(f, reference, utterance)`);
  ``mfcc_glr`` / ``mfcc_kl``: the same statistics, GLR and diagonal symmetric KL;
  ``frame_mfcc_maha``: ``mfcc_maha`` on one MFCC per 20 ms frame (`mfcc.frame_mfcc`, the
  runtime's framing: what the opt-in voice check of `side_talk` computes).
- ``dvector``: Resemblyzer's GE2E d-vector (`bargein.dsp.speaker_encoder`, the weights of the
  Resemblyzer wheel run in numpy) as Resemblyzer computes it (`embed_utterance`: a window
  shorter than 1.6 s zero-padded to one partial); ``dvector_unpadded``: as the runtime does
  (`SpeakerEncoder.embed`: up to 1.6 s, the window's own frames only); 256 numbers, L2-normed,
  compared by cosine distance.
- ``shape_rms``: the previous measure (docs/research.md, fourth round): the RMS distance of
  the mean 16-band shape (`side_talk.frame_shapes`, frames above -50 dBFS);
  ``shape_maha``: the same frames' Gaussian, compared as ``mfcc_maha``.

Measurement code (bench/voice_separation.py, `python -m bargein.research.voices`): the models
are loaded once per process; nothing here runs in a session.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bargein.dsp.mfcc import (
    Gaussian,
    diag_kl,
    frame_mfcc,
    glr,
    llr,
    mahalanobis,
    mfcc,
)

__all__ = ["FEATURES", "Embedder", "distance", "embedder"]

F64 = NDArray[np.float64]
FRAME = 320  # the floor's 20 ms frames
Embedding = Any  # a pooled vector (np.ndarray) or a `Gaussian`
Embedder = Callable[[NDArray[np.int16]], Embedding]
SMART_TURN_LAYERS = (2, 4, 6, 8)  # layer_norm_<k>: the stream after block k//2 (8: ln_post)
FEATURES = ("frame_mfcc_maha", "mfcc_maha", "mfcc_llr", "mfcc_glr", "mfcc_kl", "shape_rms",
            "shape_maha", "whisper", "dvector", "dvector_unpadded",
            *(f"smart_turn_{k}" for k in SMART_TURN_LAYERS))  # fmt: skip


def _pool(states: F64) -> F64:
    out: F64 = np.concatenate((states.mean(axis=0), states.std(axis=0)))
    return out


@lru_cache(maxsize=1)
def _whisper() -> Any:
    from bargein.engines.neural.models import whisper_model

    return whisper_model(1)


def whisper_embedding(pcm: NDArray[np.int16]) -> F64:
    model = _whisper()
    x = pcm.astype(np.float32) / 32768.0
    n = len(x) // 160 * 160
    feats = model.feature_extractor(x[:n], padding=0)[:, : n // 160]
    states = np.asarray(model.encode(feats))[0].astype(np.float64)  # (frames / 2, 384)
    return _pool(states)


@lru_cache(maxsize=1)
def _smart_turn() -> tuple[Any, tuple[str, ...]]:
    import onnxruntime as ort

    from bargein.decide.smart_turn import locate_model
    from bargein.engines.neural.onnx_graph import with_output

    model = locate_model().read_bytes()
    names = tuple(f"layer_norm_{k}" for k in SMART_TURN_LAYERS)
    for name in names:
        model = with_output(model, name)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"]), names


_last: dict[bytes, dict[str, F64]] = {}


def smart_turn_embeddings(pcm: NDArray[np.int16]) -> dict[str, F64]:
    """Every layer's pooled states of one run (the last run is kept: the layers of one
    window are asked for one after another)."""
    key = pcm.tobytes()
    if key in _last:
        return _last[key]
    from bargein.decide.features import SAMPLES, fit_window, log_mel

    session, names = _smart_turn()
    feats = log_mel(fit_window(pcm.astype(np.float32) / 32768.0))[None]
    outs = session.run(list(names), {"input_features": feats})
    real = max(1, min(len(pcm), SAMPLES) // 320)  # positions of 20 ms (stride-2 convolution)
    out = {}
    for k, t in zip(SMART_TURN_LAYERS, outs, strict=True):
        states = np.asarray(t, np.float64)
        states = states.reshape(-1, states.shape[-1])[-real:]
        out[f"smart_turn_{k}"] = _pool(states)
    _last.clear()
    _last[key] = out
    return out


def frame_mfcc_gaussian(pcm: NDArray[np.int16]) -> Gaussian:
    ceps, level = frame_mfcc(pcm, FRAME)
    g = Gaussian()
    voiced = ceps[level > -50.0]  # the side-talk check's voiced frames
    g.add(voiced if len(voiced) >= 5 else ceps)
    return g


def shape_frames(pcm: NDArray[np.int16]) -> F64:
    from bargein.decide.side_talk import frame_shapes

    shapes = frame_shapes(pcm, FRAME).astype(np.float64)
    n = len(pcm) // FRAME
    x = pcm[: n * FRAME].reshape(n, FRAME).astype(np.float64) / 32768.0
    level = 10.0 * np.log10(np.mean(x**2, axis=1) + 1e-12)
    voiced = shapes[level >= -50.0]
    return voiced if len(voiced) >= 5 else shapes


def _gaussian(frames: F64) -> Gaussian:
    g = Gaussian(0, np.zeros(frames.shape[1]), np.zeros((frames.shape[1],) * 2))
    g.add(frames)
    return g


def mfcc_gaussian(pcm: NDArray[np.int16]) -> Gaussian:
    g = Gaussian()
    frames = mfcc(pcm)
    g.add(frames if len(frames) >= 10 else mfcc(pcm, voiced_only=False))  # a quiet window
    return g


def dvector_embedding(pcm: NDArray[np.int16], padded: bool = False) -> F64:
    from bargein.dsp.speaker_encoder import normalize_volume, shared_encoder

    enc = shared_encoder()
    if padded:
        return enc.embed_utterance(normalize_volume(pcm.astype(np.float32) / 32768.0)).astype(
            np.float64)
    out: F64 = enc.embed(pcm).astype(np.float64)
    return out


def embedder(feature: str) -> Embedder:
    if feature == "dvector":
        return lambda pcm: dvector_embedding(pcm, padded=True)
    if feature == "dvector_unpadded":
        return dvector_embedding
    if feature == "frame_mfcc_maha":
        return frame_mfcc_gaussian
    if feature.startswith("shape_"):
        return lambda pcm: _gaussian(shape_frames(pcm))
    if feature.startswith("mfcc"):
        return mfcc_gaussian
    if feature == "whisper":
        return whisper_embedding
    if feature.startswith("smart_turn_"):
        return lambda pcm: smart_turn_embeddings(pcm)[feature]
    raise ValueError(f"unknown feature {feature!r}; known: {', '.join(FEATURES)}")


def _cosine(a: F64, b: F64) -> float:
    return float(1.0 - a @ b / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def distance(feature: str, a: Embedding, b: Embedding) -> float:
    """Smaller is more alike; `a` is the reference (the user's voice) where it matters."""
    if feature in ("mfcc_maha", "frame_mfcc_maha", "shape_maha"):
        return mahalanobis(a, b)
    if feature == "shape_rms":
        return float(np.sqrt(np.mean((a.mean() - b.mean()) ** 2)))
    if feature == "mfcc_llr":
        return llr(a, b)
    if feature == "mfcc_glr":
        return glr(a, b)
    if feature == "mfcc_kl":
        return diag_kl(a, b)
    return _cosine(a, b)
