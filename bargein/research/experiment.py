"""Running scenarios and writing their results: trace.jsonl, report.json, timeline.png; and the
policy comparison table. The table and CSV are pure functions of the summaries."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bargein.research.harness import RunResult, run
from bargein.research.metrics import Samples, compute
from bargein.research.plot import render
from bargein.research.policies import PolicySpec
from bargein.research.scenario import Scenario, ScenarioError, load_scenario
from bargein.runtime.trace import event_line

SCENARIO_DIR = Path(__file__).parent / "scenarios"


def starter_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.toml"))


def resolve_scenarios(args: Sequence[str]) -> list[Scenario]:
    """Each argument is a .toml file, a directory of them, or the name of a starter scenario
    (`all` for the whole starter set)."""
    paths: list[Path] = []
    for arg in args:
        p = Path(arg)
        if arg == "all":
            paths.extend(starter_scenarios())
        elif p.is_dir():
            paths.extend(sorted(p.glob("*.toml")))
        elif p.is_file():
            paths.append(p)
        elif (SCENARIO_DIR / f"{arg}.toml").is_file():
            paths.append(SCENARIO_DIR / f"{arg}.toml")
        else:
            raise ScenarioError(f"{arg}: no such scenario file, directory or starter scenario")
    scenarios = [load_scenario(p) for p in paths]
    names = [s.name for s in scenarios]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ScenarioError(f"scenario names must be unique in a run (output dirs): {dupes}")
    return scenarios


def report(result: RunResult, samples: Samples, items: list[dict[str, Any]]) -> dict[str, Any]:
    scn = result.scenario
    return {
        "scenario": scn.name,
        "description": scn.description,
        "file": str(scn.path) if scn.path else None,
        "engines": scn.engines.kind,
        "policy": result.policy.to_json(),
        "end_reason": result.end_reason,
        "media_offset_s": round(result.media_offset, 6),
        "metrics": samples.summary(),
        "items": items,
        "assistant_audio": [[round(a, 6), round(b, 6), turn] for a, b, turn in result.segments],
        "history": [{"role": m.role, "content": m.content} for m in result.messages],
    }


def run_one(
    scenario: Scenario, policy: PolicySpec, out_dir: Path | None, *, plot: bool = True
) -> tuple[Samples, dict[str, Any]]:
    """Run, measure and (with `out_dir`) write `out_dir/<scenario>/{trace.jsonl,report.json,
    timeline.png}`."""
    result = run(scenario, policy)
    ordered = sorted(result.events, key=lambda e: e.seq)
    events = [e.to_json() for e in ordered]
    samples, items = compute(events, result.truths, result.segments)
    rep = report(result, samples, items)
    if out_dir is not None:
        d = out_dir / scenario.name
        d.mkdir(parents=True, exist_ok=True)
        with open(d / "trace.jsonl", "w", encoding="utf-8") as f:
            f.writelines(event_line(e) for e in ordered)
        (d / "report.json").write_text(json.dumps(rep, indent=2) + "\n", encoding="utf-8")
        if plot:
            render(
                d / "timeline.png",
                title=f"{scenario.name}  |  policy {policy.name}  |  {scenario.description}",
                events=events,
                truths=result.truths,
                segments=result.segments,
                mic=result.mic,
                speaker=result.speaker,
                media_offset=result.media_offset,
            )
    return samples, rep


# -- the comparison table ----------------------------------------------------------------------

COLUMNS: list[tuple[str, str]] = [
    ("detect p50 ms", "barge_in_detection_ms.p50"),
    ("detect p90 ms", "barge_in_detection_ms.p90"),
    ("stop p50 ms", "stop_ms.p50"),
    ("flush p50 ms", "egress_flush_ms.p50"),
    ("false barge-in", "false_barge_in_rate"),
    ("false cancel", "false_cancel_rate"),
    ("missed", "missed_interruption_rate"),
    ("premature", "premature_turn_rate"),
    ("resume rate", "resume_rate"),
    ("resume gap p50", "resume_gap_ms.p50"),
    ("response p50 ms", "response_ms.p50"),
    ("ctx precision", "context_precision"),
    ("ctx recall", "context_recall"),
    ("unheard words", "committed_unheard_words"),
    ("wasted tokens", "wasted_tokens"),
    ("wasted TTS ms", "wasted_tts_ms"),
]


def _get(summary: dict[str, Any], dotted: str) -> Any:
    value: Any = summary
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return str(value)


def table(summaries: dict[str, dict[str, Any]]) -> str:
    """Rows: policies; columns: key metrics over the pooled scenario set."""
    header = ["policy"] + [name for name, _ in COLUMNS]
    rows = [[p] + [_cell(_get(s, key)) for _, key in COLUMNS] for p, s in summaries.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def csv_text(summaries: dict[str, dict[str, Any]]) -> str:
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["policy"] + [key for _, key in COLUMNS])
    for p, s in summaries.items():
        w.writerow([p] + ["" if _get(s, k) is None else _get(s, k) for _, k in COLUMNS])
    return out.getvalue()
