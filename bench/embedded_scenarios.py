"""Build the embedded-engine variant of the research scenarios (docs/research.md, "With the
embedded engines"): every scenario with ``[engines] kind = "embedded"`` (pocketsphinx, the local
planner, espeak-ng), every ``transcript`` dropped (pocketsphinx hears the audio itself), and
each request spoken by espeak ("Tell me a story.", scaled to the replaced request's speech
level) so the planner tells its story.

    python bench/embedded_scenarios.py OUT_DIR [--echo-at S] [SCENARIO ...]
    bargein research compare OUT_DIR --policies aec_duck_classify --seed 0

``--echo-at S`` also moves every echo window to start at ``S`` s (``0``: the echo path exists
from the first sample we play, the realistic room; the scenarios as written start it at 3.0 s,
which with the embedded reply (from ~1.6 s) is an echo appearing mid-reply). SCENARIO names
pick starter scenarios (default: all). Prints the directory written.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from bargein.dsp import resample
from bargein.research.audio import find_audio, item_pcm
from bargein.research.scenario import load_scenario
from bargein.wavio import write_wav

STARTERS = Path(__file__).resolve().parent.parent / "bargein" / "research" / "scenarios"
REQUEST_TEXT = "Tell me a story."
REQUEST_FILE = "espeak_tell_me_a_story.wav"
_FILE_KEYS = ("file", "channel", "trim_start_s", "trim_end_s", "speech", "words_json", "rttm",
              "rttm_speaker", "transcript")  # fmt: skip


def _speech_rms(pcm: np.ndarray) -> float:
    """RMS over the 20 ms frames above -50 dBFS (the speech, not the pauses around it)."""
    x = pcm[: len(pcm) // 320 * 320].astype(np.float64).reshape(-1, 320)
    ms = np.mean(x * x, axis=1)
    loud = ms[ms > (32768 * 10 ** (-50 / 20)) ** 2]
    return float(np.sqrt(np.mean(loud))) if loud.size else 0.0


def _espeak_request() -> np.ndarray:
    from bargein.engines.embedded.espeak_tts import EspeakTts

    tts = EspeakTts()
    pcm, _ = tts.synthesize_sync(REQUEST_TEXT)
    y = resample(pcm.astype(np.float32) / 32768, tts.sample_rate, 16000) * 32768
    return np.clip(np.round(y), -32768, 32767).astype(np.int16)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml(raw: dict[str, Any]) -> str:
    """The scenario tables back as TOML (the few shapes scenarios use)."""
    out: list[str] = []
    for k, v in raw.items():
        if not isinstance(v, dict) and not (isinstance(v, list) and v and isinstance(v[0], dict)):
            out.append(f"{k} = {_toml_value(v)}")
    for k, v in raw.items():
        if isinstance(v, dict):
            out.append(f"\n[{k}]")
            out += [f"{a} = {_toml_value(b)}" for a, b in v.items()]
        elif isinstance(v, list) and v and isinstance(v[0], dict):
            for item in v:
                out.append(f"\n[[{k}]]")
                out += [f"{a} = {_toml_value(b)}" for a, b in item.items()]
    return "\n".join(out) + "\n"


def build(out: Path, names: list[str] | None = None, echo_at: float | None = None) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    request = _espeak_request()
    request_rms = _speech_rms(request)
    for extra in STARTERS.iterdir():  # word-time files the scenarios name
        if extra.suffix != ".toml":
            shutil.copy(extra, out / extra.name)
    paths = sorted(STARTERS.glob("*.toml"))
    if names:
        paths = [p for p in paths if p.stem in names]
    for path in paths:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        scenario = load_scenario(path)
        raw["engines"] = {"kind": "embedded"}
        for table, item in zip(raw.get("audio", []), scenario.items, strict=True):
            table.pop("transcript", None)
            if item.kind == "request" and item.source == "file":
                level = _speech_rms(item_pcm(item, scenario.base_dir))
                name = f"{path.stem}.{item.label}.{REQUEST_FILE}"
                scaled = request.astype(np.float64) * level / max(request_rms, 1e-9)
                pcm = np.clip(np.round(scaled), -32768, 32767).astype(np.int16)
                write_wav(out / name, pcm, 16000)
                for key in _FILE_KEYS:
                    table.pop(key, None)
                table["file"] = name
                table.pop("gain", None)
            if item.source == "echo" and echo_at is not None:
                table["at_s"] = float(echo_at)
        (out / path.name).write_text(_toml(raw), encoding="utf-8")
        load_scenario(out / path.name)  # what we wrote parses
        for table in raw.get("audio", []):  # and its recordings are found
            if "file" in table:
                find_audio(table["file"], out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--echo-at", type=float, default=None, metavar="S")
    ap.add_argument("scenarios", nargs="*")
    args = ap.parse_args(argv)
    print(build(args.out, args.scenarios or None, args.echo_at))
    return 0


if __name__ == "__main__":
    sys.exit(main())
