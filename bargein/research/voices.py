"""How far each overlapping item's voice lies from its scenario's user (the request), by the
cues a voice-identity rule could use: level, the long-term spectral shape and the median F0.
A measurement of the scenarios' recordings, not the runtime (docs/research.md, "Addressed
forms, voices and detection"):

    python -m bargein.research.voices all heldout heldout_b heldout_c

prints one row per side-talk, interruption or correction item that has a recording: its level
(p90 of 20 ms frame levels over its first 0.8 s) relative to the request's (p90 over the
whole), the RMS distance of its mean 16-band shape (`side_talk.frame_shapes`, voiced frames)
from the request's, its median F0 as a ratio to the request's, and whether it is the same
recording as the request (the user interrupting in their own voice).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bargein.decide.side_talk import frame_shapes
from bargein.research.audio import RATE, item_pcm, item_truth
from bargein.research.experiment import resolve_scenarios
from bargein.research.scenario import AudioItem, Scenario
from bargein.research.voice_features import FEATURES, distance, embedder

_FRAME = RATE // 50  # 20 ms, the floor's frames
_PITCH_FRAME = RATE // 25  # 40 ms: two periods of a 50 Hz voice
_VOICED_DBFS = -45.0
KINDS = ("side_talk", "true_interruption", "correction")


def frame_levels(pcm: NDArray[np.int16], frame: int = _FRAME) -> NDArray[np.float64]:
    """dBFS of each whole frame."""
    n = len(pcm) // frame
    x = pcm[: n * frame].reshape(n, frame).astype(np.float64) / 32768.0
    out: NDArray[np.float64] = 10.0 * np.log10(np.mean(x**2, axis=1) + 1e-12)
    return out


def median_f0(pcm: NDArray[np.int16], lo_hz: float = 70.0, hi_hz: float = 400.0) -> float | None:
    """The median F0 (Hz) over voiced 40 ms frames by autocorrelation (a frame counts when its
    best lag in `lo_hz..hi_hz` correlates at least 0.4 of its energy); None: no voiced frame.
    A coarse estimate: octave errors happen, which is why only the median is used."""
    f0s = []
    lo, hi = int(RATE / hi_hz), int(RATE / lo_hz)
    for frame, level in zip(_frames(pcm, _PITCH_FRAME), frame_levels(pcm, _PITCH_FRAME),
                            strict=True):
        if level < _VOICED_DBFS:
            continue
        x = frame - frame.mean()
        ac = np.correlate(x, x, "full")[len(x) - 1 :]
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[0] > 0 and ac[lag] > 0.4 * ac[0]:
            f0s.append(RATE / lag)
    return float(np.median(f0s)) if f0s else None


def _frames(pcm: NDArray[np.int16], frame: int) -> NDArray[np.float64]:
    n = len(pcm) // frame
    return pcm[: n * frame].reshape(n, frame).astype(np.float64)


@dataclass(frozen=True)
class Voice:
    level_dbfs: float
    shape: NDArray[np.float32] | None
    f0_hz: float | None


def voice(item: AudioItem, scenario: Scenario, first_s: float | None = None) -> Voice:
    """The item's voice over its truth (its level over the first `first_s` when given)."""
    pcm = item_pcm(item, scenario.base_dir)
    truth = item_truth(item, pcm, scenario.base_dir)
    on, off = truth.onset - item.at_s, truth.offset - item.at_s
    speech = pcm[int(on * RATE) : int(off * RATE)]
    head = speech if first_s is None else speech[: int(first_s * RATE)]
    levels = frame_levels(head)
    shapes = frame_shapes(speech, _FRAME)
    voiced = shapes[frame_levels(speech)[: len(shapes)] > -50.0]
    return Voice(
        float(np.percentile(levels, 90)) if len(levels) else float("-inf"),
        voiced.mean(axis=0) if len(voiced) else None,
        median_f0(speech),
    )


def speech(item: AudioItem, scenario: Scenario, first_s: float | None = None) -> NDArray[np.int16]:
    """The item's samples from its truth onset (its first `first_s` when given)."""
    pcm = item_pcm(item, scenario.base_dir)
    truth = item_truth(item, pcm, scenario.base_dir)
    on, off = truth.onset - item.at_s, truth.offset - item.at_s
    out = pcm[int(on * RATE) : int(off * RATE)]
    return out if first_s is None else out[: int(first_s * RATE)]


def rows(scenarios: Sequence[Scenario], features: Sequence[str] = ("frame_mfcc_maha",),
         first_s: float = 0.8) -> list[dict[str, object]]:
    """One row per item; `features` (of `voice_features.FEATURES`) add the distance of the
    item's first `first_s` of speech from the request's whole speech."""
    out: list[dict[str, object]] = []
    for sc in scenarios:
        request = next((i for i in sc.items if i.kind == "request" and i.file), None)
        if request is None:
            continue
        user = voice(request, sc)
        refs = {f: embedder(f)(speech(request, sc)) for f in features}
        for item in sc.items:
            if item.kind not in KINDS or item.file is None:
                continue
            v = voice(item, sc, first_s=first_s)
            head = speech(item, sc, first_s)
            extra = {f: round(distance(f, refs[f], embedder(f)(head)), 3) for f in features}
            dist = (float(np.sqrt(np.mean((v.shape - user.shape) ** 2)))
                    if v.shape is not None and user.shape is not None else None)
            ratio = v.f0_hz / user.f0_hz if v.f0_hz and user.f0_hz else None
            out.append({
                "scenario": sc.name, "item": item.label, "kind": item.kind,
                "relative_db": round(v.level_dbfs - user.level_dbfs, 1),
                "shape_db": None if dist is None else round(dist, 1),
                "f0_ratio": None if ratio is None else round(ratio, 2),
                "same_recording": (item.file, item.channel) == (request.file, request.channel),
                **extra,
            })  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bargein.research.voices", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sets", nargs="*", default=["all"])
    p.add_argument("--features", default="frame_mfcc_maha",
                   help=f"comma-separated, of: {', '.join(FEATURES)} ('' for none)")
    p.add_argument("--first-s", type=float, default=0.8)
    p.add_argument("--json", action="store_true", help="one JSON list instead of text rows")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    features = [f for f in args.features.split(",") if f]
    for f in features:
        try:
            embedder(f)  # an unknown name fails before any work
        except ValueError as e:
            p.error(str(e))
    table = rows(resolve_scenarios(args.sets), features, args.first_s)
    if args.json:
        print(json.dumps(table, indent=1))
        return 0
    for r in table:
        extra = "".join(f"  {f} {r[f]}" for f in features)
        print(f"{r['scenario']:26} {r['item']:20} {r['kind']:17} rel {r['relative_db']:+6} dB"
              f"  shape {r['shape_db']} dB  F0 x{r['f0_ratio']}  same {r['same_recording']}"
              f"{extra}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
