"""Offline engines that ship inside registry packages: no network, no API key.

- `SphinxStt`: pocketsphinx with its bundled US-English model (dictation, keywords or grammar);
- `LocalPlanner`: a deterministic responder (time, date, arithmetic, a long story, continue);
- `EspeakTts`: espeak-ng through ctypes, with word marks.

Every option is checked before it reaches C (`options`): bad ones raise TypeError/ValueError
naming the option, which the WebSocket server turns into `bad_field`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bargein.engines.base import Engines
from bargein.engines.embedded.espeak_tts import EspeakTts, espeak_variants, espeak_voices
from bargein.engines.embedded.local_planner import LocalPlanner
from bargein.engines.embedded.sphinx_stt import SphinxRecognizer, SphinxStt

__all__ = [
    "EspeakTts",
    "LocalPlanner",
    "SphinxRecognizer",
    "SphinxStt",
    "default_engines",
    "espeak_variants",
    "espeak_voices",
]

_STT_OPTIONS = {"keyphrases", "kws_threshold", "grammar", "second_pass", "options"}
_TTS_OPTIONS = {"voice", "rate_wpm", "pitch", "end_pause", "chunk_ms"}
_PLANNER_OPTIONS = {"now", "tokens_per_second"}


def default_engines(**options: Any) -> Engines:
    """The embedded engines. Options are routed by name to the engine that takes them:

    STT: keyphrases, kws_threshold, grammar, second_pass, options (raw pocketsphinx config);
    TTS: voice, rate_wpm, pitch, end_pause, chunk_ms; planner: now, tokens_per_second.
    Cheap to call: pocketsphinx loads its model on the first utterance (or `await stt.warm()`).
    """
    unknown = set(options) - _STT_OPTIONS - _TTS_OPTIONS - _PLANNER_OPTIONS
    if unknown:
        raise TypeError(f"default_engines() got unknown options: {', '.join(sorted(unknown))}")

    def pick(names: set[str]) -> dict[str, Any]:
        return {k: v for k, v in options.items() if k in names}

    planner_options = pick(_PLANNER_OPTIONS)
    planner_options.setdefault("now", datetime.now)
    return Engines(
        stt=SphinxStt(**pick(_STT_OPTIONS)),
        planner=LocalPlanner(**planner_options),
        tts=EspeakTts(**pick(_TTS_OPTIONS)),
    )
