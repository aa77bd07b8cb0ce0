"""The echo windows of the research scenarios with the embedded engines, our reply guaranteed.

    python bench/embedded_echo.py [--echo-at S] [--policy P] [--runs N] [--out DIR]

Builds the embedded variant of the five echo scenarios (``bench/embedded_scenarios.py``) and
runs them with ``research compare`` machinery, except that the local planner tells its story on
the first turn whatever pocketsphinx heard: under load pocketsphinx mishears "Tell me a story."
(or its final comes seconds late, its CPU time being charged to the virtual clock), and then no
reply plays over the echo window and the run says nothing about echo. Prints one JSON line per
run: every echo window's outcome (``cancelled``, ``ducks``, ``pause_ms``), the interruptions'
(``taken_over``, ``detection_ms``), and the load average. docs/dsp.md, "Waveform evidence".
Charged compute makes single runs vary: run it under ``flock /tmp/team/bench.lock``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

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
    from embedded_scenarios import build

    from bargein.research.experiment import run_one
    from bargein.research.policies import resolve_policy
    from bargein.research.scenario import load_scenario

    scen_dir = build(out / "scenarios", list(ECHO_SCENARIOS), echo_at)
    pol = resolve_policy(policy)
    items: list[dict[str, Any]] = []
    for name in ECHO_SCENARIOS:
        _, rep = run_one(load_scenario(scen_dir / f"{name}.toml"), pol, out / "runs", plot=False)
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
