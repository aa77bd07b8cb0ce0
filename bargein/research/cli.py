"""`bargein research`: run interruption scenarios under a policy, compare policies, list both."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

from bargein.research.check import check_text
from bargein.research.experiment import (
    HELDOUT_SETS,
    csv_text,
    items_csv,
    kind_table,
    markdown_table,
    resolve_scenarios,
    run_one,
    starter_scenarios,
    table,
)
from bargein.research.harness import SchedulerSeedError
from bargein.research.metrics import Samples
from bargein.research.plot import render_comparison
from bargein.research.policies import PRESETS, PolicySpec, resolve_policy
from bargein.research.real_engines import REAL_ENGINES, with_engines
from bargein.research.scenario import (
    INTERRUPTIONS,
    NON_INTERRUPTIONS,
    ScenarioError,
    load_scenario,
)

EPILOG = f"""\
SCENARIO is a .toml file (format: docs/research.md), a directory of them, the name of a
starter scenario (see 'bargein research list'), 'all' for the whole starter set, or
{" / ".join(repr(name) for name in HELDOUT_SETS)} for a held-out set (docs/research.md).
'bargein research check SCENARIO' validates scenarios and shows their truths without a run.
POLICY is a preset name, a .toml file with a [policy] table, or an outside judge
"pkg.module:Class" / "path/to/file.py:Class" (the OverlapJudge Protocol, docs/research.md).

examples:
  bargein research list
  bargein research check my_scenario.toml
  bargein research run all --policy confirm_words --out runs/confirm_words
  bargein research compare all --policies onset,confirm,confirm_words --out runs/cmp
  bargein research compare heldout --policies duck_classify,smart_turn --out runs/heldout
  bargein research compare all --policies confirm_words,my_policy.py:Patient --out runs/mine
"""

ENGINES_HELP = (
    "run the scenarios with real engines (embedded: pocketsphinx + espeak-ng; neural: Whisper "
    "+ Piper), transcripts dropped and the request spoken by Piper (docs/research.md)"
)

OPTIONS_HELP = "with --engines: their options, a JSON object ('{\"partial_interval_ms\": 250}')"


def _json_object(text: str) -> object:
    """--engine-options: argparse's own message ("invalid loads value") does not say why; a
    value that is not an object is refused by `with_engines`, naming it."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bargein research",
        description="Reproducible interruption experiments on a virtual clock: scripted user "
        "audio with ground-truth labels, a policy under test, traces, metrics and timelines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    run = sub.add_parser(
        "run",
        help="run scenarios; write DIR/<scenario>/{trace.jsonl,report.json,timeline.png}",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    run.add_argument(
        "--policy",
        metavar="POLICY",
        help="policy under test (default: each scenario's own [policy] table)",
    )
    run.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory")
    run.add_argument("--no-plot", action="store_true", help="skip timeline.png")
    run.add_argument("--seed", type=int, default=0, help="scheduler seed (default 0)")
    run.add_argument("--engines", choices=("scripted", *REAL_ENGINES), help=ENGINES_HELP)
    run.add_argument("--engine-options", type=_json_object, metavar="JSON", help=OPTIONS_HELP)
    cmp = sub.add_parser(
        "compare",
        help="run scenarios under several policies; print a table, write CSV",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cmp.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    cmp.add_argument(
        "--policies",
        required=True,
        metavar="A,B,C",
        help='comma-separated policies: preset names, .toml files with a [policy] table, or '
        'outside judges "pkg.module:Class" / "file.py:Class"',
    )
    cmp.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="also write DIR/{compare.csv,items.csv,compare.png,compare.md,summary.json} and "
        "DIR/<policy>/<scenario>/{trace.jsonl,report.json}",
    )
    cmp.add_argument("--seed", type=int, default=0, help="scheduler seed (default 0)")
    cmp.add_argument("--engines", choices=("scripted", *REAL_ENGINES), help=ENGINES_HELP)
    cmp.add_argument("--engine-options", type=_json_object, metavar="JSON", help=OPTIONS_HELP)
    lst = "list the starter scenarios, the held-out sets (items by kind) and the policy presets"
    sub.add_parser("list", help=lst, description=lst + ".")
    chk = sub.add_parser(
        "check",
        help="validate scenarios without running them: every item's truth, words and level",
        description="Build each scenario's input as a run would (files, trims, labels, word "
        "times) and print every item's truth [onset-offset] on the timeline, where it came from, "
        "its expected assistant state, its level (p90 of 20 ms frames over the truth, and "
        "relative to the first request) and the words the scripted recogniser will hear; warn "
        "where a truth edge lies more than 0.25 s from the clip's own sound. No policy runs. "
        "Exit 0 when every scenario builds (warnings included), 2 on the first error.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    chk.add_argument("scenarios", nargs="+", metavar="SCENARIO")
    return parser


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        scenarios = resolve_scenarios(args.scenarios)
        if args.command == "check":
            warned = 0
            for scn in scenarios:
                text, n = check_text(scn)
                print(text)
                warned += n
            print(f"{len(scenarios)} scenario(s) build; {warned} warning(s)")
            return 0
        if args.engines or args.engine_options is not None:
            scenarios = [with_engines(s, args.engines or "", options=args.engine_options)
                         for s in scenarios]  # fmt: skip
        if args.command == "run":
            policy = resolve_policy(args.policy) if args.policy else None
            pooled = Samples()
            for scn in scenarios:
                spec = policy or scn.policy
                samples, rep = run_one(scn, spec, args.out, plot=not args.no_plot, seed=args.seed)
                pooled.merge(samples)
                m = rep["metrics"]
                fir, missed = m["false_interruption_rate"], m["missed_interruption_rate"]
                print(
                    f"{scn.name:<28} policy={spec.name:<16} "
                    f"false_interruption={fir['value']} ({fir['n']}/{fir['of']}) "
                    f"missed={missed['value']} ({missed['n']}/{missed['of']}) "
                    f"stop_p50={m['stop_ms']['p50']} -> {args.out / scn.name}"
                )
            (args.out / "summary.json").write_text(
                json.dumps(pooled.summary(), indent=2) + "\n", encoding="utf-8"
            )
            return 0
        policies = [resolve_policy(p.strip()) for p in args.policies.split(",") if p.strip()]
        if not policies:
            raise ValueError("--policies needs at least one policy")
        names = [spec.name for spec in policies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"policy names must be unique in a comparison: {dupes}")
        summaries = {}
        reports: list[tuple[str, dict[str, object]]] = []
        for spec in policies:
            pooled = Samples()
            for scn in scenarios:
                out = args.out / spec.name if args.out else None
                samples, rep = run_one(scn, spec, out, plot=False, seed=args.seed)
                pooled.merge(samples)
                reports.append((spec.name, rep))
            summaries[spec.name] = pooled.summary()
        print(f"{len(scenarios)} scenarios: {', '.join(s.name for s in scenarios)}")
        print(table(summaries))
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "compare.csv").write_text(csv_text(summaries), encoding="utf-8")
            (args.out / "items.csv").write_text(items_csv(reports), encoding="utf-8")
            (args.out / "compare.md").write_text(
                markdown_table(summaries)
                + "\n\nNon-interruptions by kind:\n\n"
                + kind_table(summaries)
                + "\n",
                "utf-8",
            )
            render_comparison(args.out / "compare.png", summaries, scenarios=len(scenarios))
            (args.out / "summary.json").write_text(
                json.dumps(summaries, indent=2) + "\n", encoding="utf-8"
            )
            print(f"wrote {args.out / 'compare.csv'}, items.csv, compare.md, compare.png")
        return 0
    except SchedulerSeedError as exc:
        print(f"bargein research: error: {exc}", file=sys.stderr)
        return 3
    except (ScenarioError, ValueError) as exc:
        print(f"bargein research: error: {exc}", file=sys.stderr)
        return 2


def _list() -> int:
    _list_set("starter scenarios (items by kind; 'all'):", starter_scenarios())
    for name, folder in HELDOUT_SETS.items():
        _list_set(f"\nheld-out set '{name}' ({folder}):", sorted(folder.glob("*.toml")))
    print("\npolicy presets (bargein.presets; the fields each sets):")
    width = max(len(name) for name in PRESETS)
    for name in PRESETS:
        spec: PolicySpec = resolve_policy(name)
        p = PRESETS[name]
        sets = [
            f"{part}: " + ", ".join(f"{k}={v}" for k, v in fields.items())
            for part, fields in (("policy", p.policy), ("vad", p.vad), ("session", p.session))
            if fields
        ]
        print(f"  {name:<{width}} {spec.description}")
        if sets:
            print(f"  {'':<{width}}   {'; '.join(sets)}")
    return 0


def _list_set(title: str, paths: list[Path]) -> None:
    print(title)
    total: Counter[str] = Counter()
    scenarios = [load_scenario(path) for path in paths]
    width = max([28, *(len(scn.name) for scn in scenarios)])
    for scn in scenarios:
        kinds = Counter(it.kind for it in scn.items)
        total.update(kinds)
        counted = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        print(f"  {scn.name:<{width}} [{scn.engines.kind}] {scn.description}  ({counted})")
    groups = [("interruptions", INTERRUPTIONS), ("non-interruptions", NON_INTERRUPTIONS)]
    parts = [
        f"{sum(total[k] for k in kinds)} {name} ("
        + ", ".join(f"{total[k]} {k}" for k in sorted(kinds) if total[k])
        + ")"
        for name, kinds in groups
    ]
    rest = ", ".join(
        f"{n} {k}" for k, n in sorted(total.items()) if k not in INTERRUPTIONS | NON_INTERRUPTIONS
    )
    print(f"  in all: {'; '.join(parts)}; {rest}")
