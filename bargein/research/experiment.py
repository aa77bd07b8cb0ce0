"""Running scenarios and writing their results: trace.jsonl, report.json, timeline.png; and the
policy comparison (table, summary CSV, per-item CSV, chart). Tables and CSVs are pure functions
of the summaries and reports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bargein.research.harness import RunResult, run
from bargein.research.metrics import OUTCOMES, Samples, compute
from bargein.research.plot import render
from bargein.research.policies import PolicySpec
from bargein.research.samples import BY_KIND
from bargein.research.scenario import Scenario, ScenarioError, load_scenario
from bargein.runtime.trace import event_line

SCENARIO_DIR = Path(__file__).parent / "scenarios"
# Held-out sets (docs/research.md, "Held-out scenarios"), each committed before any policy ran
# on it; `heldout` and then `heldout_b` were tuned on after their first run, `heldout_c` not;
# `heldout_d` was frozen before any classifier ran on it and run once, after the fourth round's
# decisions (`91a6e2f`); `heldout_e` was written from README/docs/--help alone, as an outside
# tester would, frozen unrun and run once (`9112116`); `heldout_f` was written the same way once
# `heldout_e` had been seen, and frozen unrun; `heldout_g` was written the same way (session 7),
# frozen unrun, to be run once after that session's decisions. `bargein research compare heldout
# ...` names a set.
HELDOUT_SETS = {
    "heldout": Path(__file__).parent / "scenarios_heldout",
    "heldout_b": Path(__file__).parent / "scenarios_heldout_b",
    "heldout_c": Path(__file__).parent / "scenarios_heldout_c",
    "heldout_d": Path(__file__).parent / "scenarios_heldout_d",
    "heldout_e": Path(__file__).parent / "scenarios_heldout_e",
    "heldout_f": Path(__file__).parent / "scenarios_heldout_f",
    "heldout_g": Path(__file__).parent / "scenarios_heldout_g",
    # written from the docs alone (session 8), frozen unrun, run once after the session's decisions
    "heldout_h": Path(__file__).parent / "scenarios_heldout_h",
    "heldout_i": Path(__file__).parent / "scenarios_heldout_i",
    "heldout_j": Path(__file__).parent / "scenarios_heldout_j",
    # written from the docs alone by an outside tester, frozen unrun
    "heldout_k": Path(__file__).parent / "scenarios_heldout_k",
    # written from the docs alone by an outside tester, frozen unrun
    "heldout_l": Path(__file__).parent / "scenarios_heldout_l",
    # written from the docs alone by an outside tester, frozen unrun
    "heldout_m": Path(__file__).parent / "scenarios_heldout_m",
    # written from the docs alone by an outside tester, frozen unrun
    "heldout_n": Path(__file__).parent / "scenarios_heldout_n",
}


def starter_scenarios() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.toml"))


def resolve_scenarios(args: Sequence[str]) -> list[Scenario]:
    """Each argument is a .toml file, a directory of them, the name of a starter scenario
    (`all` for the whole starter set) or of a held-out set (a key of `HELDOUT_SETS`)."""
    paths: list[Path] = []
    for arg in args:
        p = Path(arg)
        if arg == "all":
            paths.extend(starter_scenarios())
        elif arg in HELDOUT_SETS and not p.exists():
            paths.extend(sorted(HELDOUT_SETS[arg].glob("*.toml")))
        elif p.is_dir():
            paths.extend(sorted(p.glob("*.toml")))
        elif p.is_file():
            paths.append(p)
        elif (SCENARIO_DIR / f"{arg}.toml").is_file():
            paths.append(SCENARIO_DIR / f"{arg}.toml")
        else:
            raise ScenarioError(
                f"{arg}: no such scenario file, directory or starter scenario, nor a held-out "
                f"set ({', '.join(HELDOUT_SETS)}); 'bargein research list' lists them"
            )
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
        "seed": result.seed,
        "media_offset_s": round(result.media_offset, 6),
        "metrics": samples.summary(),
        "items": items,
        "assistant_audio": [[round(a, 6), round(b, 6), turn] for a, b, turn in result.segments],
        "assistant_words": [[round(t, 6), turn, w] for t, turn, w in result.heard_words],
        "history": [{"role": m.role, "content": m.content} for m in result.messages],
    }


def run_one(
    scenario: Scenario,
    policy: PolicySpec,
    out_dir: Path | None,
    *,
    plot: bool = True,
    seed: int = 0,
) -> tuple[Samples, dict[str, Any]]:
    """Run, measure and (with `out_dir`) write `out_dir/<scenario>/{trace.jsonl,report.json,
    timeline.png}`."""
    result = run(scenario, policy, seed=seed)
    ordered = sorted(result.events, key=lambda e: e.seq)
    events = [e.to_json() for e in ordered]
    samples, items = compute(events, result.truths, result.segments, result.heard_words)
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

# (column, summary key, kind): "rate" prints value and n/of, "dist" p50 and n, "fa" per minute.
COLUMNS: list[tuple[str, str, str]] = [
    ("TOR interrupt", "tor_interruption", "rate"),
    ("TOR backch.", "tor_backchannel", "rate"),
    ("TOR pause", "tor_pause", "rate"),
    ("missed", "missed_interruption_rate", "rate"),
    ("missed@1.5s", "missed_1500ms_rate", "rate"),
    ("stop p50 ms", "stop_ms", "dist"),
    ("int. resp p50 ms", "interruption_response_ms", "dist"),
    ("resp p50 ms", "response_ms", "dist"),
    ("false int. rate", "false_interruption_rate", "rate"),
    ("false cancel", "false_cancel_rate", "rate"),
    ("disrupt/item", "disruptions_per_item", "rate"),
    ("ducks/item", "ducks_per_item", "rate"),
    ("duck p50 ms", "duck_ms", "dist"),
    ("FA/min speech", "false_alarms_per_min", "fa"),
    ("false stop p50", "false_stop_ms", "dist"),
    ("resume rate", "resume_rate", "rate"),
    ("detect p50 ms", "barge_in_detection_ms", "dist"),
    ("after word p50 ms", "detection_after_word_ms", "dist"),
    ("react p50 ms", "reaction_ms", "dist"),
    ("premature", "premature_turn_rate", "rate"),
    ("ctx prec.", "context_precision", "rate"),
    ("ctx recall", "context_recall", "rate"),
    ("unheard w", "committed_unheard_words", "int"),
    ("wasted tok", "wasted_tokens", "int"),
    ("wasted TTS ms", "wasted_tts_ms", "int"),
    ("expect failed", "expectations_failed", "rate"),
]
# Headline metrics for the chart: (title, key, kind).
HEADLINE: list[tuple[str, str, str]] = [
    ("TOR interruption (higher better)", "tor_interruption", "rate"),
    ("TOR backchannel (lower better)", "tor_backchannel", "rate"),
    ("missed interruptions", "missed_interruption_rate", "rate"),
    ("stop latency p50 ms", "stop_ms", "dist"),
    ("interruption response p50 ms", "interruption_response_ms", "dist"),
    ("false interruption rate", "false_interruption_rate", "rate"),
    ("false alarms / min of speech", "false_alarms_per_min", "fa"),
    ("context recall", "context_recall", "rate"),
    ("false cancel rate", "false_cancel_rate", "rate"),
    ("audible disruptions / non-int. item", "disruptions_per_item", "rate"),
    ("ducks (restored or kept) / non-int. item", "ducks_per_item", "rate"),
    ("detection latency p50 ms", "barge_in_detection_ms", "dist"),
]


def _get(summary: dict[str, Any], dotted: str) -> Any:
    value: Any = summary
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _num(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value % 1 else f"{value:.0f}"
    return str(value)


def headline_value(summary: dict[str, Any], key: str, kind: str) -> float | None:
    """The single number of a metric: a rate's value, a distribution's p50, FA per minute."""
    v = _get(summary, f"{key}.p50" if kind == "dist" else key)
    if isinstance(v, dict):
        v = v.get("value")
    return float(v) if isinstance(v, int | float) else None


def cell(summary: dict[str, Any], key: str, kind: str) -> str:
    """A table cell with its denominator: `0.25 (1/4)`, `123.4 (n=5)`, `1.2 (3/2.5min)`."""
    v = _get(summary, key)
    if kind == "rate" and isinstance(v, dict):
        return f"{_num(v['value'])} ({v['n']}/{v['of']})"
    if kind == "dist" and isinstance(v, dict):
        return f"{_num(v['p50'])} (n={v['n']})"
    if kind == "fa" and isinstance(v, dict):
        return f"{_num(v['value'])} ({v['n']}/{_num(v['minutes'])}min)"
    return _num(v)


def outcomes_cell(summary: dict[str, Any], group: str) -> str:
    o = _get(summary, f"outcomes.{group}") or {}
    return " ".join(f"{k}={o.get(k, 0)}" for k in OUTCOMES)


def table(summaries: dict[str, dict[str, Any]]) -> str:
    """Rows: policies; columns: key metrics over the pooled scenario set, each rate with its
    numerator/denominator and each latency with its sample count."""
    header = ["policy"] + [name for name, _, _ in COLUMNS] + ["outcomes int.", "outcomes non-int."]
    rows = [
        [p]
        + [cell(s, key, kind) for _, key, kind in COLUMNS]
        + [outcomes_cell(s, "interruption"), outcomes_cell(s, "non_interruption")]
        for p, s in summaries.items()
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in [header, *rows]
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(summaries: dict[str, dict[str, Any]]) -> str:
    """The same table as GitHub markdown (for docs/research.md)."""
    header = ["policy"] + [name for name, _, _ in COLUMNS] + ["outcomes int.", "outcomes non-int."]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p, s in summaries.items():
        cells = [cell(s, key, kind) for _, key, kind in COLUMNS]
        cells += [outcomes_cell(s, "interruption"), outcomes_cell(s, "non_interruption")]
        lines.append("| " + " | ".join([p, *cells]) + " |")
    return "\n".join(lines)


# The per-kind table: (column, by_kind key) for each non-interruption kind.
KIND_COLUMNS: list[tuple[str, str]] = [
    ("false int.", "false_interruption_rate"),
    ("false cancel", "false_cancel_rate"),
    ("disrupt/item", "disruptions_per_item"),
    ("ducks/item", "ducks_per_item"),
]


def kind_table(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown: per policy, the non-interruption figures of each kind (`by_kind`), each rate
    with its numerator/denominator, so a pooled figure can be traced to the kind behind it."""
    header = ["policy"] + [f"{kind} {name}" for kind in BY_KIND for name, _ in KIND_COLUMNS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for p, s in summaries.items():
        cells = [cell(s, f"by_kind.{kind}.{key}", "rate") for kind in BY_KIND
                 for _, key in KIND_COLUMNS]  # fmt: skip
        lines.append("| " + " | ".join([p, *cells]) + " |")
    return "\n".join(lines)


def csv_text(summaries: dict[str, dict[str, Any]]) -> str:
    """One row per policy: every table metric as value, and numerator/denominator columns."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    head = ["policy"]
    for _, key, kind in COLUMNS:
        head += {"rate": [key, f"{key}.n", f"{key}.of"], "dist": [f"{key}.p50", f"{key}.n"],
                 "fa": [key, f"{key}.n", f"{key}.minutes"]}.get(kind, [key])  # fmt: skip
    head += [f"outcomes.{g}.{o}" for g in ("interruption", "non_interruption") for o in OUTCOMES]
    for kind in BY_KIND:
        for _, key in KIND_COLUMNS:
            name = f"by_kind.{kind}.{key}"
            head += [name, f"{name}.n", f"{name}.of"]
    w.writerow(head)
    for p, s in summaries.items():
        row: list[Any] = [p]
        for name in head[1:]:
            v = _get(s, name)
            if isinstance(v, dict):
                v = v.get("value")
            row.append("" if v is None else v)
        w.writerow(row)
    return out.getvalue()


ITEM_FIELDS = [
    "label", "kind", "onset", "offset", "truth_source", "expect", "assistant_at_onset",
    "expectation_met", "overlap", "outcome", "decisions", "pauses_resumed", "pause_ms",
    "ducks", "ducks_restored", "duck_ms", "stopped", "cancelled", "first_decision_ms",
    "detection_ms", "after_word_ms", "flush_ms", "stop_ms", "missed", "responded", "response_ms",
    "taken_over", "premature_turns",
]  # fmt: skip


def items_csv(reports: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """One row per policy x scenario x labelled event with every per-item metric (empty where
    it does not apply), ready for `pandas.read_csv`."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["policy", "scenario", *ITEM_FIELDS])
    for policy, rep in reports:
        for item in rep["items"]:
            row: list[Any] = [policy, rep["scenario"]]
            for f in ITEM_FIELDS:
                v = item.get(f)
                if isinstance(v, list):
                    v = ";".join(_num(x) for x in v)
                row.append("" if v is None else v)
            w.writerow(row)
    return out.getvalue()
