"""How well each recognizer's word confidence separates misheard murmurs from real words, on
the labelled clips of the starter scenarios (`python -m bargein.benchmarks.word_confidence
[--engines embedded,neural] [--json]`).

Each clip (every `file` or `noise` item of the scenarios but the requests, deduplicated) is fed
to a fresh recognizer as the stt actor feeds it: 300 ms of silence (the pre-roll), then 100 ms
batches. Recorded: every partial and the final with their words' confidences
(`bargein.engines.base.Hypothesis`) and when they came. The question the classifier asks is
"is this word content?" within a backchannel's length (`MurmurConfig.short_ms`, 900 ms), so
the figures are over hypotheses that arrive by then: for *non-content* clips (backchannel,
noise) each word outside the backchannel lexicon (what would count as content); for
*interruptions* (true interruption, correction) each such word. Printed: the two lists, the
separation (AUC: how often a misheard word scores below a real one; 0.5 = none) and, for a
threshold, the share of each side below it. The clips are the research scenarios' own (not
held out). CPU-bound but not timed: no lock needed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import trio

from bargein.decide.backchannel import Lexicon, normalize
from bargein.decide.confidence import DEFAULT
from bargein.engines.base import Hypothesis, Recognizer, SttEngine, word_confidences
from bargein.research.audio import RATE, item_pcm
from bargein.research.experiment import starter_scenarios
from bargein.research.scenario import load_scenario
from bargein.runtime.messages import Int16Array

NON_CONTENT = ("backchannel", "noise")
CONTENT = ("true_interruption", "correction")
PREROLL_S = 0.3
BATCH = RATE // 10


@dataclass
class Clip:
    name: str
    kind: str
    pcm: Int16Array


def labelled_clips() -> list[Clip]:
    clips: list[Clip] = []
    seen: set[tuple[Any, ...]] = set()
    for path in starter_scenarios():
        scn = load_scenario(path)
        for it in scn.items:
            if it.kind not in NON_CONTENT + CONTENT or it.source == "echo":
                continue
            key = (
                it.source,
                it.file,
                it.channel,
                it.trim_start_s,
                it.trim_end_s,
                it.gain,
                it.shape,
                it.duration_s,
                it.level_dbfs,
                it.seed,
            )
            if key in seen:
                continue
            seen.add(key)
            pcm = np.concatenate(
                [np.zeros(int(PREROLL_S * RATE), np.int16), item_pcm(it, scn.base_dir)]
            )
            clips.append(Clip(f"{scn.name}/{it.label}", it.kind, pcm))
    return clips


async def _hypotheses(rec: Recognizer, pcm: Int16Array) -> list[tuple[float, str, bool]]:
    """(seconds of speech fed after the pre-roll, text, final) of each partial and the final."""
    out: list[tuple[float, str, bool]] = []
    await rec.start_utterance()
    for at in range(0, len(pcm), BATCH):
        text = await rec.feed(pcm[at : at + BATCH])
        if text:
            out.append(((at + BATCH) / RATE - PREROLL_S, text, False))
    out.append((len(pcm) / RATE - PREROLL_S, await rec.end_utterance(), True))
    await rec.aclose()
    return out


def _engine(name: str) -> SttEngine:
    if name == "embedded":
        from bargein.engines.embedded import SphinxStt

        return SphinxStt()
    from bargein.engines.neural.whisper_stt import WhisperStt

    return WhisperStt()


def auc(low: list[float], high: list[float]) -> float | None:
    """P(a `low` value < a `high` value), ties counted half."""
    if not low or not high:
        return None
    wins = sum((a < b) + 0.5 * (a == b) for a in low for b in high)
    return round(wins / (len(low) * len(high)), 3)


def measure(engine: str, clips: list[Clip], short_ms: float = DEFAULT.short_ms) -> dict[str, Any]:
    lexicon = Lexicon.of()
    stt = _engine(engine)
    rows: list[dict[str, Any]] = []
    misheard: list[float] = []
    real: list[float] = []
    unscored = {"non_content": 0, "content": 0}
    measure = ""
    for clip in clips:
        hyps = trio.run(_hypotheses, stt.recognizer(), clip.pcm)
        side = "non_content" if clip.kind in NON_CONTENT else "content"
        seen: list[dict[str, Any]] = []
        for at, text, final in hyps:
            words = word_confidences(text)
            if isinstance(text, Hypothesis):
                measure = text.measure
            early = at * 1000 <= short_ms
            scored = []
            for w in words or ():
                tokens = normalize(w.text)
                _, content = lexicon.scan(tokens)
                scored.append((w.text, round(w.confidence, 3), content > 0))
                if early and content:
                    (misheard if side == "non_content" else real).append(w.confidence)
            if early and words is None and lexicon.scan(normalize(text))[1]:
                unscored[side] += 1
            seen.append(
                {
                    "at_s": round(at, 2),
                    "final": final,
                    "text": str(text),
                    "words": scored if words is not None else None,
                }
            )
        rows.append({"clip": clip.name, "kind": clip.kind, "hypotheses": seen})
    grid = (0.05, 0.1, 0.25, 0.5)
    return {
        "engine": stt.name,
        "measure": measure,
        "short_ms": short_ms,
        "misheard_content_confidences": sorted(round(c, 3) for c in misheard),
        "real_content_confidences": sorted(round(c, 3) for c in real),
        "auc_misheard_below_real": auc(misheard, real),
        "threshold": DEFAULT.below.get(measure),
        "below_threshold": {
            str(t): {
                "misheard": f"{sum(c < t for c in misheard)}/{len(misheard)}",
                "real": f"{sum(c < t for c in real)}/{len(real)}",
            }
            for t in grid
        },
        "content_hypotheses_without_confidence": unscored,
        "clips": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bargein.benchmarks.word_confidence")
    parser.add_argument("--engines", default="embedded,neural")
    parser.add_argument("--json", action="store_true", help="print the whole result as JSON")
    args = parser.parse_args(argv)
    clips = labelled_clips()
    results = [measure(name.strip(), clips) for name in args.engines.split(",") if name.strip()]
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    for r in results:
        print(
            f"{r['engine']} ({r['measure']}): AUC {r['auc_misheard_below_real']}, "
            f"threshold {r['threshold']}, below each: {r['below_threshold']}; content "
            f"hypotheses without confidence {r['content_hypotheses_without_confidence']}"
        )
        print(f"  misheard: {r['misheard_content_confidences']}")
        print(f"  real:     {r['real_content_confidences']}")
        for c in r["clips"]:
            print(
                f"  {c['kind']:<17} {c['clip']:<40} "
                + " | ".join(
                    f"{h['at_s']}{'F' if h['final'] else ''} {h['text']!r}"
                    + (f" {[w[1] for w in h['words']]}" if h["words"] else "")
                    for h in c["hypotheses"]
                )
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
