"""Interruption metrics from one run: pure functions of the event stream (as the JSON dicts of
trace.jsonl), the ground truth and the assistant audio heard. Every latency is a difference of
two stamps on the session clock; every rate a count over labelled items. Definitions are in
docs/research.md; this module is their executable form.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bargein.research.audio import Truth
from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS

EventDict = Mapping[str, Any]
Segment = tuple[float, float, int]  # assistant audio heard: start, end, turn

# A pause or barge-in belongs to an item when the VAD's onset lies in the item's speech, give or
# take the VAD's onset window (it may date the onset a little before the energy truth).
ONSET_SLACK_S = 0.25
TURN_TAKING = frozenset({"request", "user_pause"}) | INTERRUPTIONS


@dataclass
class Samples:
    """Raw material of the metrics for one or more runs; `summary()` turns it into figures.
    Runs are pooled by `merge`, so a set of scenarios is summarised as one population."""

    detection_s: list[float] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)
    flush_s: list[float] = field(default_factory=list)
    response_s: list[float] = field(default_factory=list)
    resume_gap_s: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def merge(self, other: Samples) -> None:
        for name in ("detection_s", "stop_s", "flush_s", "response_s", "resume_gap_s"):
            getattr(self, name).extend(getattr(other, name))
        self.counts.update(other.counts)

    def summary(self) -> dict[str, Any]:
        c = self.counts
        committed, heard, matched = c["committed_words"], c["heard_words"], c["matched_words"]
        return {
            "barge_in_detection_ms": distribution(self.detection_s),
            "stop_ms": distribution(self.stop_s),
            "egress_flush_ms": distribution(self.flush_s),
            "response_ms": distribution(self.response_s),
            "false_barge_in_rate": ratio(c["false_overlaps_hit"], c["false_overlaps"]),
            "false_cancel_rate": ratio(c["false_overlaps_cancelled"], c["false_overlaps"]),
            "missed_interruption_rate": ratio(c["interruptions_missed"], c["interruptions"]),
            "premature_turn_rate": ratio(c["pauses_premature"], c["user_pauses"]),
            "resume_rate": ratio(c["resumes"], c["pauses"]),
            "resume_gap_ms": distribution(self.resume_gap_s),
            "context_precision": ratio(matched, committed),
            "context_recall": ratio(matched, heard),
            "committed_unheard_words": committed - matched,
            "wasted_tokens": c["wasted_tokens"],
            "wasted_tts_ms": c["wasted_tts_ms"],
            "expectations_failed": c["expectations_failed"],
            "counts": dict(sorted(c.items())),
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), on a sorted copy."""
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def distribution(values_s: Sequence[float]) -> dict[str, float | int | None]:
    if not values_s:
        return {"n": 0, "p50": None, "p90": None, "p99": None}
    ms = [1000 * v for v in values_s]
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 0.5), 3),
        "p90": round(percentile(ms, 0.9), 3),
        "p99": round(percentile(ms, 0.99), 3),
    }


def ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def words(text: str) -> list[str]:
    return [w for w in re.sub(r"[^\w' ]+", " ", text.lower()).split() if w]


def _of(events: Iterable[EventDict], *types: str) -> list[EventDict]:
    return [e for e in events if e["type"] in types]


def _belongs(onset: float | None, t: float, truth: Truth, next_onset: float) -> bool:
    if onset is not None:
        return truth.onset - ONSET_SLACK_S <= onset <= truth.offset
    # A decision without an onset (words for an active turn): after the item, before the next.
    return truth.onset <= t < next_onset


def assistant_state(events: Sequence[EventDict], t: float) -> str:
    """What the assistant was doing at session time t: speaking, thinking or silent."""
    state = "silent"
    started: dict[int, float] = {}
    for e in events:
        if e["t"] > t:
            break
        turn = int(e.get("turn") or 0)
        if e["type"] == "turn_started":
            started[turn] = e["t"]
        elif e["type"] in ("turn_cancelled", "turn_completed", "barge_in"):
            started.pop(turn, None)
    if started:
        turn = max(started)
        first = [e for e in _of(events, "audio_out_first") if e.get("turn") == turn]
        state = "speaking" if first and first[0]["t"] <= t else "thinking"
    return state


def item_outcomes(
    events: Sequence[EventDict], truths: Sequence[Truth], segments: Sequence[Segment]
) -> list[dict[str, Any]]:
    """Per labelled item: what the assistant did about it."""
    barge_ins = _of(events, "barge_in")
    pauses = _of(events, "output_paused")
    cleared = _of(events, "output_cleared")
    starts = _of(events, "turn_started")
    order = sorted(truths, key=lambda tr: tr.onset)
    out: list[dict[str, Any]] = []
    for i, tr in enumerate(order):
        nxt = order[i + 1].onset if i + 1 < len(order) else math.inf
        row: dict[str, Any] = tr.to_json()
        row["assistant_at_onset"] = assistant_state(events, tr.onset)
        row["expectation_met"] = tr.expect in ("any", row["assistant_at_onset"])
        hits = [
            b for b in barge_ins
            if b.get("reason") == "barge_in" and _belongs(b.get("onset"), b["t"], tr, nxt)
        ]  # fmt: skip
        paused = [p for p in pauses if _belongs(p.get("onset"), p["t"], tr, nxt)]
        row["paused"] = bool(paused)
        row["cancelled"] = bool(hits)
        if hits:
            b = hits[0]
            row["barge_in_t"] = b["t"]
            row["detection_ms"] = round(1000 * (b["t"] - tr.onset), 3)
            turn = b.get("turn")
            heard_end = max((s[1] for s in segments if s[2] == turn), default=None)
            row["stop_ms"] = round(1000 * max(0.0, (heard_end or 0.0) - tr.onset), 3)
            clear = [c for c in cleared if c.get("turn") == turn and c["t"] >= b["t"]]
            if clear:
                row["flush_ms"] = round(1000 * (clear[0]["t"] - b["t"]), 3)
        if tr.kind == "user_pause":
            row["premature_turns"] = sum(1 for s in starts if tr.onset < s["t"] < tr.offset)
        out.append(row)
    return out


def compute(
    events: Sequence[EventDict], truths: Sequence[Truth], segments: Sequence[Segment]
) -> tuple[Samples, list[dict[str, Any]]]:
    events = sorted(events, key=lambda e: e["seq"])
    s = Samples()
    c = s.counts
    rows = item_outcomes(events, truths, segments)
    for row in rows:
        kind = row["kind"]
        if not row["expectation_met"]:
            c["expectations_failed"] += 1
        if kind in INTERRUPTIONS:
            c["interruptions"] += 1
            if row["cancelled"]:
                s.detection_s.append(row["detection_ms"] / 1000)
                s.stop_s.append(row["stop_ms"] / 1000)
                if "flush_ms" in row:
                    s.flush_s.append(row["flush_ms"] / 1000)
            else:
                c["interruptions_missed"] += 1
        elif kind in NON_INTERRUPTIONS:
            c["false_overlaps"] += 1
            c["false_overlaps_hit"] += row["paused"] or row["cancelled"]
            c["false_overlaps_cancelled"] += row["cancelled"]
        elif kind == "user_pause":
            c["user_pauses"] += 1
            c["pauses_premature"] += row["premature_turns"] > 0

    # Response latency: each reply's first audio against the latest unanswered end of speech.
    ends = sorted((t.offset, t.label) for t in truths if t.kind in TURN_TAKING)
    used: set[str] = set()
    for first in _of(events, "audio_out_first"):
        before = [(end, label) for end, label in ends if end <= first["t"]]
        if before and before[-1][1] not in used:
            used.add(before[-1][1])
            s.response_s.append(first["t"] - before[-1][0])

    # False-interruption resume: each pause that ended in a resume, and the gap it left.
    paused_at: dict[int, float] = {}
    for e in events:
        if e["type"] == "output_paused":
            c["pauses"] += 1
            paused_at[e["turn"]] = e["t"]
        elif e["type"] == "output_resumed" and e["turn"] in paused_at:
            c["resumes"] += 1
            s.resume_gap_s.append(e["t"] - paused_at.pop(e["turn"]))

    # Context fidelity and wasted work, per cancelled turn: a completed turn was sent whole and
    # commits it whole under every policy, so only interrupted turns tell the policies apart.
    c["turns_completed"] += len(_of(events, "turn_completed"))
    for e in _of(events, "turn_cancelled"):
        committed, heard = words(e["committed_text"]), words(e["heard_text"])
        c["turns_cancelled"] += 1
        c["committed_words"] += len(committed)
        c["heard_words"] += len(heard)
        c["matched_words"] += sum((Counter(committed) & Counter(heard)).values())
        generated = len(words(e["generated_text"]))
        unheard = max(0, generated - len(heard))
        c["wasted_tokens"] += round(e["tokens"] * unheard / generated) if generated else 0
        c["wasted_tts_ms"] += round(max(0.0, e["synthesized_ms"] - e["heard_ms"]))
    return s, rows
