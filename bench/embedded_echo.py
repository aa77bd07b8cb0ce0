"""The echo windows of the research scenarios with the embedded engines, our reply guaranteed.

    python bench/embedded_echo.py [--echo-at S] [--policy P] [--runs N] [--out DIR]

The five echo scenarios as ``bargein research compare <them> --engines embedded`` runs them
(``bargein.research.real_engines.with_engines``), except that the local planner tells its story
on the first turn whatever pocketsphinx heard: under load pocketsphinx may mishear the request
(or its final comes seconds late, its compute being charged to the virtual clock), and then no
reply plays over the echo window and the run says nothing about echo. ``--echo-at S`` moves
every echo window to start at ``S`` s (``0``: the echo path exists from the first sample we
play, the realistic room; as written they start at 3.0 s, with the embedded reply from ~1.6 s:
an echo appearing mid-reply). Prints one JSON line per run: every echo window's outcome
(``cancelled``, ``ducks``, ``pause_ms``), the interruptions' and backchannels' (``taken_over``,
``detection_ms``), and the load average. docs/dsp.md, "Waveform evidence" and "Spectral
evidence". Charged compute makes single runs vary: run it under ``flock /tmp/team/bench.lock``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

ECHO_SCENARIOS = (
    "echo_laptop", "echo_speakerphone", "echo_far_room", "double_talk_echo", "echo_room_interrupt",
)  # fmt: skip


def _story_first() -> None:
    from bargein.engines.embedded import local_planner as lp

    reply = lp.LocalPlanner.reply

    def story(self: lp.LocalPlanner, messages: Any) -> str:
        if not any(m.role == "assistant" for m in messages):
            return "\n\n".join(lp.STORY)
        return reply(self, messages)

    lp.LocalPlanner.reply = story  # type: ignore[method-assign]


def run(policy: str, echo_at: float | None, out: Path) -> dict[str, Any]:
    from bargein.research.experiment import SCENARIO_DIR, run_one
    from bargein.research.policies import resolve_policy
    from bargein.research.real_engines import with_engines
    from bargein.research.scenario import load_scenario

    pol = resolve_policy(policy)
    items: list[dict[str, Any]] = []
    for name in ECHO_SCENARIOS:
        scenario = with_engines(load_scenario(SCENARIO_DIR / f"{name}.toml"), "embedded")
        if echo_at is not None:
            moved = tuple(
                dataclasses.replace(it, at_s=echo_at) if it.source == "echo" else it
                for it in scenario.items
            )
            scenario = dataclasses.replace(scenario, items=moved)
        _, rep = run_one(scenario, pol, out, plot=False)
        for it in rep["items"]:
            if it["kind"] in ("echo", "true_interruption", "backchannel"):
                keep = ("label", "kind", "assistant_at_onset", "outcome", "cancelled", "ducks",
                        "pause_ms", "taken_over", "detection_ms")  # fmt: skip
                items.append({"scenario": name} | {k: it.get(k) for k in keep})
    echo = [i for i in items if i["kind"] == "echo"]
    return {
        "policy": policy,
        "echo_at": echo_at,
        "echo_cancelled": sum(bool(i["cancelled"]) for i in echo),
        "echo_ducked": sum(bool(i["ducks"]) for i in echo),
        "echo_paused": sum(bool(i["pause_ms"]) for i in echo),
        "echo_windows": len(echo),
        "items": items,
        "loadavg": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", default="aec_duck_classify")
    ap.add_argument("--echo-at", type=float, default=None, metavar="S")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    _story_first()
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            print(json.dumps(run(args.policy, args.echo_at, out)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
