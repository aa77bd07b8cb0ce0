"""When does a real recognizer's first partial arrive? pocketsphinx against the scripted layout.

For every speech item (interruptions, backchannels, side talk) of the given scenarios: the
item's clip is fed to `SphinxStt` in 100 ms pieces (the STT actor's batch) from 0.3 s before
its truth onset; each new partial hypothesis is reported with the end of the piece that
produced it, in ms after the truth onset, beside the end of the item's first scripted word.
Prints one JSON object per item (docs/research.md, "Detection latency").

    python -m bargein.research.partial_timing [SCENARIO ...]     # default: all
"""

from __future__ import annotations

import json
import sys

import trio

from bargein.research.audio import RATE, item_pcm, item_truth
from bargein.research.experiment import resolve_scenarios

KINDS = ("true_interruption", "correction", "backchannel", "side_talk")
PIECE_S = 0.1
PREROLL_S = 0.3


async def measure(args: list[str]) -> list[dict[str, object]]:
    from bargein.engines.embedded.sphinx_stt import SphinxStt

    stt = SphinxStt()
    rows: list[dict[str, object]] = []
    for scenario in resolve_scenarios(args or ["all"]):
        for item in scenario.items:
            if item.kind not in KINDS or item.source != "file":
                continue
            pcm = item_pcm(item, scenario.base_dir)
            truth = item_truth(item, pcm, scenario.base_dir)
            onset = truth.onset - item.at_s
            rec = stt.recognizer()
            await rec.start_utterance()
            step = round(PIECE_S * RATE)
            partials: list[tuple[int, str]] = []
            for at in range(max(0, round((onset - PREROLL_S) * RATE)), len(pcm), step):
                text = await rec.feed(pcm[at : at + step])
                if text:
                    partials.append((round(((at + step) / RATE - onset) * 1000), text))
            final = await rec.end_utterance()
            first = truth.words[0][1] - truth.onset if truth.words else None
            rows.append({
                "scenario": scenario.name, "label": item.label, "kind": item.kind,
                "scripted_first_word_end_ms": None if first is None else round(first * 1000),
                "first_partial_ms": partials[0][0] if partials else None,
                "partials": partials[:6], "final": final,
            })  # fmt: skip
    return rows


def main(argv: list[str] | None = None) -> int:
    for row in trio.run(measure, list(sys.argv[1:] if argv is None else argv)):
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
