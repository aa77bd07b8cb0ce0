"""`bargein research check`: a scenario built without running anything — every file, trim and
label resolved as a run would — and each item's truth, the words the scripted recogniser will
hear and its level shown, with warnings where a truth looks wrong against the clip's own
sound. Pure: scenarios in, rows and text out."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from bargein.research.audio import RATE, Truth, build_input, item_audio, speech_region
from bargein.research.real_engines import p90_dbfs
from bargein.research.scenario import USER_TURNS, AudioItem, Scenario
from bargein.runtime.messages import Int16Array

# A truth edge this far from the clip's sound (the energy rule) is worth a look: the energy
# rule's own error against labels is ~0.1 s (docs/research.md, "Ground truth").
SUSPECT_S = 0.25


@dataclass(frozen=True, slots=True)
class ItemCheck:
    truth: Truth
    level_dbfs: float | None  # p90 of the 20 ms frames over the truth (None: echo, or silent)
    warnings: tuple[str, ...]


def check_item(scenario: Scenario, item: AudioItem) -> ItemCheck:
    if item.source == "echo":
        assert item.until_s is not None
        window = (item.at_s, item.until_s)
        truth = Truth(item.label, item.kind, *window, item.expect, (window,), (), "echo window")
        return ItemCheck(truth, None, ())
    pcm, truth = item_audio(scenario, item)
    on, off = truth.onset - item.at_s, truth.offset - item.at_s
    try:
        level: float | None = p90_dbfs(pcm[int(on * RATE) : int(off * RATE)])
    except ValueError:  # no frame above -60 dBFS
        level = None
    warnings: list[str] = []
    region = speech_region(pcm) if item.source == "file" and truth.source != "energy" else None
    if region is not None:
        start, end = region
        for gap, text in (
            (on - start, "the clip sounds {:.2f} s before its truth onset (a neighbouring word "
             "or another speaker? trim it)"),
            (start - on, "its truth starts {:.2f} s before any sound in the clip (a label span "
             "holding a pause? give speech or words_json)"),
            (end - off, "the clip sounds {:.2f} s after its truth offset"),
            (off - end, "its truth ends {:.2f} s after the clip's last sound"),
        ):  # fmt: skip
            if gap > SUSPECT_S:
                warnings.append(text.format(gap))
    # what the scenario's own level or gain clipped (a recording's own peaks are not ours)
    clipped = _full_scale(pcm) if item.source == "noise" or item.gain > 1.0 else 0
    if clipped:
        warnings.append(
            f"{clipped} samples at full scale (clipped: lower its "
            f"{'level_dbfs' if item.source == 'noise' else 'gain'})"
        )
    spans = item.speech or ()
    if item.transcripts and len(item.transcripts) > 1 and len(item.transcripts) != len(spans):
        warnings.append(
            f"{len(item.transcripts)} transcript strings over {len(spans)} speech "
            "span(s): joined and spread evenly, not one per span"
        )
    return ItemCheck(truth, level, tuple(warnings))


def _full_scale(pcm: Int16Array) -> int:
    return int(np.count_nonzero((pcm == 32767) | (pcm == -32768)))


def check_text(scenario: Scenario) -> tuple[str, int]:
    """The report for one scenario and its number of warnings; raises ScenarioError."""
    pcm, _ = build_input(scenario)  # the whole timeline, exactly as a run builds it
    checks = [check_item(scenario, item) for item in scenario.items]
    kinds = Counter(c.truth.kind for c in checks)
    counted = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    lines = [f"{scenario.name}: ok, {len(checks)} items ({counted}), input {len(pcm) / RATE:.2f} s"
             f" [{scenario.path or 'no file'}]"]  # fmt: skip
    # Relative to the user's first turn, a request or a user pause: the level the runtime
    # learns first (a scenario may open with a pause-broken turn and have no request).
    turns = sorted((c for c in checks if c.truth.kind in USER_TURNS), key=lambda c: c.truth.onset)
    ref = turns[0].level_dbfs if turns else None
    width = max(len(c.truth.label) for c in checks)
    swidth = max(len(c.truth.source) for c in checks)
    warned = 0
    for c in sorted(checks, key=lambda c: (c.truth.onset, c.truth.label)):
        t = c.truth
        if c.level_dbfs is None:
            level = "        -"
        else:
            level = f"{c.level_dbfs:6.1f} dBFS" + (
                f" ({c.level_dbfs - ref:+.1f} dB)" if ref is not None else ""
            )
        words = " ".join(w for _, _, w in t.words)
        lines.append(f"  {t.label:<{width}}  {t.kind:<17} {t.onset:7.2f}-{t.offset:<7.2f} "
                     f"expect {t.expect:<8} {t.source:<{swidth}}  {level}  {words!r}")  # fmt: skip
        for w in c.warnings:
            lines.append(f"    warning: {t.label!r}: {w}")
        warned += len(c.warnings)
    # items that sound at once add up: their sum may clip where neither does alone
    mixed = _full_scale(pcm) - sum(_full_scale(item_audio(scenario, it)[0])
                                   for it in scenario.items if it.source != "echo")  # fmt: skip
    if mixed > 0:
        lines.append(f"  warning: the mix clips {mixed} more samples where items overlap")
        warned += 1
    return "\n".join(lines), warned
