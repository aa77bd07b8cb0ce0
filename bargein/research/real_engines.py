"""The starter scenarios with real recognizers, in one step: `with_engines(scenario, kind)`
(`bargein research compare all --engines embedded|neural`).

A scripted scenario tells the recognizer what each item says (`transcript`); a real one must
hear it, so for `embedded` (pocketsphinx, the local planner, espeak-ng) and `neural` (Whisper
tiny.en, the local planner, Piper) every item's `transcript` is dropped. Collage items keep
their recordings, so their truths come from the recordings' own labels. The opening request
("go forward ten meters" *scripted* as "tell me a story") would be heard as what it is, and the
local planner would not tell the story the scenario interrupts: each request scripted as
"tell me a story" is replaced by a synthetic voice saying "Tell me a story.", scaled so its loud
frames (p90 of 20 ms frame levels, the statistic the classifier's `UserLevel` keeps) match the
request recording's. The user's level is kept; the user's voice (spectrum) becomes the
synthetic one's. The voice is Piper's (the `neural` extra): pocketsphinx heard espeak-ng's
rendering as "you totally", "duly on sorry", "two story" (at 120-175 wpm, two voices; a fresh
decoder, 100 ms batches) and Piper's as "tell me a story"; without the extra, espeak-ng's
(and the planner may not tell its story). Written once per level and voice under the system's
temporary directory.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bargein.research.audio import RATE, item_pcm
from bargein.research.scenario import AudioItem, EngineSpec, Scenario
from bargein.runtime.messages import Int16Array
from bargein.wavio import write_wav

__all__ = [
    "REAL_ENGINES",
    "REQUEST_TEXT",
    "p90_dbfs",
    "request_clip",
    "request_voice",
    "with_engines",
]

REAL_ENGINES = ("embedded", "neural")
REQUEST_TEXT = "Tell me a story."
SCRIPTED_REQUEST = ("tell me a story",)
_FRAME = RATE // 50


def p90_dbfs(pcm: Int16Array, rate: int = RATE) -> float:
    """90th percentile of the 20 ms frame levels (dBFS) over the frames above -60 dBFS."""
    frame = rate // 50
    x = pcm[: len(pcm) // frame * frame].astype(np.float64).reshape(-1, frame) / 32768.0
    levels = 10 * np.log10(np.maximum((x**2).mean(axis=1), 1e-12))
    voiced = levels[levels > -60]
    if len(voiced) == 0:
        raise ValueError("no frame above -60 dBFS")
    return float(np.percentile(voiced, 90))


def request_voice() -> tuple[str, Callable[[str], tuple[Int16Array, int]]]:
    """(name, text -> (pcm, rate)) of the voice that speaks the request: Piper when the
    `neural` extra is installed, else espeak-ng."""
    from bargein.engines.neural import neural_available

    if neural_available():
        from bargein.engines.neural.piper_tts import PiperTts

        piper = PiperTts()
        return "piper", lambda text: (piper.synthesize_sync(text)[0], piper.sample_rate)
    from bargein.engines.embedded import EspeakTts

    espeak = EspeakTts()
    return "espeak", lambda text: (espeak.synthesize_sync(text)[0], espeak.sample_rate)


def request_clip(level_dbfs: float, cache_dir: Path | None = None) -> Path:
    """The request, "Tell me a story." (`request_voice`), at the voice's own rate, scaled to
    `level_dbfs` (p90 frames), as a WAV file (made once per level; the scenario reader
    resamples it)."""
    directory = cache_dir or Path(tempfile.gettempdir()) / "bargein-research-requests"
    directory.mkdir(parents=True, exist_ok=True)
    name, speak = request_voice()
    key = hashlib.sha1(f"{name}|{REQUEST_TEXT}|{level_dbfs:.2f}".encode()).hexdigest()[:12]
    path = directory / f"request_{name}_{key}.wav"
    if path.is_file():
        return path
    pcm, rate = speak(REQUEST_TEXT)
    gain = 10 ** ((level_dbfs - p90_dbfs(pcm, rate)) / 20)
    scaled = np.clip(np.round(pcm.astype(np.float64) * gain), -32768, 32767).astype(np.int16)
    # Written beside and renamed: parallel runs never read a half-written file.
    fd, tmp = tempfile.mkstemp(suffix=".wav", dir=directory)
    os.close(fd)
    write_wav(tmp, scaled, rate)
    os.replace(tmp, path)
    return path


def _spoken_request(item: AudioItem, scenario: Scenario, cache_dir: Path | None) -> AudioItem:
    level = p90_dbfs(item_pcm(item, scenario.base_dir))
    return dataclasses.replace(
        item,
        file=str(request_clip(level, cache_dir)),
        channel=None,
        trim_start_s=0.0,
        trim_end_s=None,
        gain=1.0,
        speech=None,
        words_json=None,
        rttm=None,
        rttm_speakers=None,
        transcripts=None,
    )


def _check_options(kind: str, options: dict[str, Any]) -> None:
    """Build the engines once (cheap: models load on first use), so a bad option is a clear
    error before any run, not a traceback inside one."""
    if kind == "embedded":
        from bargein.engines.embedded import default_engines as make
    else:
        from bargein.engines.neural import neural_engines as make
    try:
        make(**options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"--engine-options for {kind}: {exc}") from None


def with_engines(
    scenario: Scenario,
    kind: str,
    cache_dir: Path | None = None,
    options: dict[str, Any] | None = None,
) -> Scenario:
    """`scenario` run by the real engines `kind` ("embedded" | "neural"; "scripted" returns it
    unchanged): transcripts dropped, the scripted "tell me a story" request spoken
    (`request_clip`); `options` are the engines' (`default_engines` / `neural_engines`)."""
    if kind in ("scripted", "") and options is not None:
        raise ValueError("engine options need real engines (--engines embedded|neural)")
    if kind == "scripted":
        return scenario
    if kind not in REAL_ENGINES:
        raise ValueError(f"engines must be scripted, {' or '.join(REAL_ENGINES)}, got {kind!r}")
    items = tuple(
        _spoken_request(it, scenario, cache_dir)
        if it.kind == "request" and it.transcripts == SCRIPTED_REQUEST
        else dataclasses.replace(it, transcripts=None)
        for it in scenario.items
    )
    if options is not None and not isinstance(options, dict):
        raise ValueError(f"engine options must be a JSON object, got {options!r}")
    _check_options(kind, options or {})
    return dataclasses.replace(
        scenario, items=items, engines=EngineSpec(kind, options=options or {})
    )
