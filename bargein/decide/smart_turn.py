"""End of turn by meaning: Smart Turn v3.2 (BSD-2, Daily), an ONNX classifier over the last 8 s
of the user's audio that says whether the turn is *complete* (the user has finished what they
meant to say) or not (a pause mid-sentence, a trailing "and...").

Optional: needs ``onnxruntime`` and the ``pipecat-ai`` wheel, which ships the model file
(``pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx``, 8.7 MB, int8). Only the
file is used, found through the installed distribution's file list (``importlib.metadata``):
no pipecat module is imported and nothing is downloaded. ``unavailable_reason()`` says why it
cannot run; ``SmartTurn()`` raises ``SmartTurnUnavailable`` with that reason.

The model takes ``input_features`` (batch, 80, 800): the log-mel features of ``features.py``
over the last 8 s at 16 kHz (shorter audio is zero-padded in front), and returns one
probability per item (already a sigmoid; the output is named ``logits`` but lies in [0, 1]).
On x86 CPUs without VNNI onnxruntime's fast int8 kernels saturate and the scores drift, so
there (``u8s8_saturates()``) the session asks for its exact ones (``SmartTurn.exact_int8``).
"""

from __future__ import annotations

import importlib.util
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bargein.decide.features import RATE, fit_window, log_mel
from bargein.wheel_files import locate_in_wheel

DISTRIBUTION = "pipecat-ai"
MODEL_PATH = "pipecat/audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
THRESHOLD = 0.5  # the model's own decision point (pipecat: complete when p > 0.5)
PRECISION_OPTION = "session.x64quantprecision"  # onnxruntime: exact int8 GEMM on x86 w/o VNNI


class SmartTurnUnavailable(RuntimeError):
    """The optional model cannot run here; the message says what to install."""


def locate_model() -> Path:
    """The model file inside the installed ``pipecat-ai`` wheel."""
    return locate_in_wheel(
        DISTRIBUTION, MODEL_PATH, SmartTurnUnavailable, "the Smart Turn model file",
        f"pip install --no-deps {DISTRIBUTION}",
    )


def unavailable_reason() -> str | None:
    """None when ``SmartTurn()`` can run, else why not."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "onnxruntime is not installed (pip install onnxruntime)"
    try:
        locate_model()
    except SmartTurnUnavailable as e:
        return str(e)
    return None


def u8s8_saturates(machine: str | None = None, cpuinfo: str | None = None) -> bool:
    """Whether onnxruntime's int8 (u8 x s8) GEMM saturates on this CPU: x86 without VNNI
    (AVX2, or AVX-512 without VNNI), whose kernels add each pair of products in a saturating
    int16; VNNI and AMX add them in int32. Unknown flags (no /proc/cpuinfo) count as saturating.
    ``machine`` and ``cpuinfo`` default to this host's."""
    machine = (machine if machine is not None else platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "x86", "i386", "i686"):
        return False
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return True
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.partition(":")[2].split())
    return not flags & {"avx512_vnni", "avx_vnni", "amx_int8"}


def session_options(threads: int = 1, exact_int8: bool | None = None) -> Any:
    """onnxruntime session options for the model (an ``ort.SessionOptions``); ``exact_int8``
    (default: ``u8s8_saturates()``) selects onnxruntime's exact u8u8 kernels."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    so.intra_op_num_threads = threads
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # No busy-waiting worker threads: the CPU a decision costs is the CPU it uses.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    # The model is int8 (u8 activations x s8 weights). Where the u8s8 kernels saturate the
    # scores drift (emulated: the whole ARCTIC sentence 0.35, by exact arithmetic 0.69-0.82;
    # docs/turn_detection.md). onnxruntime applies the option on every AVX2 CPU, VNNI or
    # not, and there it costs ~50% more CPU for the same result: only where it is needed.
    if u8s8_saturates() if exact_int8 is None else exact_int8:
        so.add_session_config_entry(PRECISION_OPTION, "1")
    return so


@dataclass(frozen=True)
class TurnPrediction:
    probability: float  # P(turn complete)
    complete: bool  # probability > threshold
    features_ms: float  # CPU time of the log-mel features
    inference_ms: float  # CPU time of the ONNX run


class SmartTurn:
    """One loaded model; ``predict(audio)`` on the user's turn so far (16 kHz mono)."""

    def __init__(self, model: Path | None = None, *, threads: int = 1,
                 threshold: float = THRESHOLD) -> None:
        reason = unavailable_reason() if model is None else None
        if reason is not None:
            raise SmartTurnUnavailable(reason)
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        import onnxruntime as ort

        self.model_path = model if model is not None else locate_model()
        self.threshold = threshold
        self.exact_int8 = u8s8_saturates()  # onnxruntime's slower exact int8 kernels in use
        self._session: Any = ort.InferenceSession(
            str(self.model_path), sess_options=session_options(threads, self.exact_int8),
            providers=["CPUExecutionProvider"],
        )
        inp = self._session.get_inputs()[0]
        if inp.name != "input_features" or list(inp.shape[1:]) != [80, 800]:
            raise SmartTurnUnavailable(
                f"{self.model_path}: unexpected input {inp.name} {inp.shape}, "
                "expected input_features (batch, 80, 800)"
            )

    def predict(self, audio: NDArray[np.generic], rate: int = RATE) -> TurnPrediction:
        """P(complete) for a turn whose audio (PCM16 or float in [-1, 1]) ends now."""
        a = np.asarray(audio)
        if a.ndim != 1:
            raise ValueError(f"expected mono audio, got shape {a.shape}")
        if a.dtype == np.int16:
            x = a.astype(np.float32) / 32768.0
        elif a.dtype.kind == "f":
            x = a.astype(np.float32)
        else:
            raise TypeError(f"expected int16 or float samples, got {a.dtype}")
        if not np.all(np.isfinite(x)):
            raise ValueError("audio contains NaN or infinity")
        if rate != RATE:
            from bargein.dsp import resample

            x = resample(x, rate, RATE)
        t0 = time.process_time()
        feats = log_mel(fit_window(x))[None]
        t1 = time.process_time()
        (out,) = self._session.run(None, {"input_features": feats})
        t2 = time.process_time()
        p = float(np.clip(np.asarray(out).reshape(-1)[0], 0.0, 1.0))
        return TurnPrediction(p, p > self.threshold, (t1 - t0) * 1e3, (t2 - t1) * 1e3)
