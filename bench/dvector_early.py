"""Could the d-vector tell the user's voice from another's on fewer voiced frames? Prints JSON.

Runs a preset (default `duck_classify_speaker`) over research sets (scripted engines, seed 0)
and, for every overlapping utterance the floor judges at the user's level (above `quiet_db`,
-3 dB under their turns: where the level cannot decide and the voice must), embeds its first
k voiced frames (k = 8 ... 40, 20 ms each) against the user's calibrated speech, as
`side_talk._voice` does at `voice_frames` = 20. Utterances are matched to the item whose
truth span holds their first frame. Per group (interruptions = true_interruption +
correction; side talk; echo; ...) and k: n, median distance, and the share at or below
`own_voice` (0.33) and 0.25, at or above `other_voice` (0.42).

    .venv/bin/python bench/dvector_early.py [--preset NAME] [--dump FILE] SET [SET ...]

`--dump FILE` also writes one JSON line per utterance judged, at any level (scenario,
label, kind, rel, and its distance at each k) for thresholds the summary does not print.

(Observation only: it patches `OverlapAudio.side_talk` to see each verdict's frames; the
runs' decisions are the preset's own.)
"""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from typing import Any

import numpy as np

from bargein.actors import overlap_audio as oa
from bargein.decide import side_talk as st
from bargein.dsp.speaker_encoder import cosine_distance, shared_encoder
from bargein.research import harness
from bargein.research.experiment import resolve_scenarios
from bargein.research.policies import resolve_policy

KS = (8, 10, 12, 15, 20, 30, 40)


def _pcm(frames: list[Any]) -> Any:
    return np.clip(np.concatenate(frames), -32768, 32767).astype(np.int16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sets", nargs="+")
    ap.add_argument("--preset", default="duck_classify_speaker")
    ap.add_argument("--dump", help="also write one JSON line per judged utterance (any level)")
    args = ap.parse_args()
    seen: dict[tuple[int, float], dict[str, Any]] = {}
    users: dict[tuple[int, int], Any] = {}
    orig = oa.OverlapAudio.side_talk

    def observe(self: oa.OverlapAudio, text: str, going: bool = False,
                final: bool = False) -> st.SideTalkVerdict:
        v = orig(self, text, going, final)
        h = self._now
        user = self.profile.speech(40)
        if not h.times or user is None or self.profile.level is None:
            return v
        e = seen.setdefault((id(self), h.times[0]), {"t0": h.times[0], "d": {}})
        enc = shared_encoder()
        key = (id(self.profile), self.profile.speech_version)
        if key not in users:  # the user's voice once per version, as `SpeakerCue.user` does
            users[key] = enc.embed(_pcm(user))
        n = min(len(h.shapes), len(h.levels))
        pcm = [r[st.BANDS:] for r, lv in zip(h.shapes[len(h.shapes) - n:],
                                             h.levels[len(h.levels) - n:], strict=True)
               if lv > -50.0 and r.shape == (st.SPEAKER_ROW,)]
        for k in KS:
            if len(pcm) >= k and k not in e["d"]:
                e["d"][k] = cosine_distance(users[key], enc.embed(_pcm(pcm[:k])))
        e["rel"] = float(np.percentile(h.levels, 90)) - self.profile.level
        return v

    oa.OverlapAudio.side_talk = observe  # type: ignore[method-assign]
    by: dict[str, dict[int, list[float]]] = defaultdict(lambda: defaultdict(list))
    rows: list[dict[str, Any]] = []
    for sc in resolve_scenarios(args.sets):
        seen.clear()
        users.clear()
        res = harness.run(sc, resolve_policy(args.preset), seed=0)
        for e in seen.values():
            t = next((t for t in res.truths if t.onset - 0.3 <= e["t0"] <= t.offset), None)
            if t is None or "rel" not in e:
                continue
            rows.append({"scenario": sc.name, "label": t.label, "kind": t.kind,
                         "rel": round(e["rel"], 2), "d": {str(k): round(d, 4)
                                                          for k, d in e["d"].items()}})
            if e["rel"] <= -3.0:
                continue
            group = "interruption" if t.kind in ("true_interruption", "correction") else t.kind
            for k, d in e["d"].items():
                by[group][k].append(d)
    if args.dump:
        with open(args.dump, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    out = {g: {str(k): {"n": len(v), "median": round(statistics.median(v), 3),
                        "le_0.25": round(sum(x <= 0.25 for x in v) / len(v), 2),
                        "le_0.33": round(sum(x <= 0.33 for x in v) / len(v), 2),
                        "ge_0.42": round(sum(x >= 0.42 for x in v) / len(v), 2)}
               for k, v in sorted(m.items())} for g, m in sorted(by.items())}
    print(json.dumps({"preset": args.preset, "sets": args.sets, "groups": out}, indent=1))


if __name__ == "__main__":
    main()
