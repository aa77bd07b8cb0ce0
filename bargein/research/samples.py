"""The research metrics' raw samples and how they become figures: `Samples` pools latencies
and counts over runs; `summary()` states each as a distribution (p50/p90/p99) or a rate with
its denominator. The measuring itself is metrics.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bargein.stats import nearest_rank


@dataclass
class Samples:
    """Raw material of the metrics for one or more runs; `summary()` turns it into figures.
    Runs are pooled by `merge`, so a set of scenarios is summarised as one population."""

    detection_s: list[float] = field(default_factory=list)
    after_word_s: list[float] = field(default_factory=list)
    reaction_s: list[float] = field(default_factory=list)
    stop_s: list[float] = field(default_factory=list)
    false_stop_s: list[float] = field(default_factory=list)
    flush_s: list[float] = field(default_factory=list)
    response_s: list[float] = field(default_factory=list)
    interruption_response_s: list[float] = field(default_factory=list)
    resume_gap_s: list[float] = field(default_factory=list)
    duck_s: list[float] = field(default_factory=list)
    speech_s: float = 0.0  # assistant audio heard
    counts: Counter[str] = field(default_factory=Counter)

    _LISTS = (
        "detection_s",
        "after_word_s",
        "reaction_s",
        "stop_s",
        "false_stop_s",
        "flush_s",
        "response_s",
        "interruption_response_s",
        "resume_gap_s",
        "duck_s",
    )

    def merge(self, other: Samples) -> None:
        for name in self._LISTS:
            getattr(self, name).extend(getattr(other, name))
        self.speech_s += other.speech_s
        self.counts.update(other.counts)

    def summary(self) -> dict[str, Any]:
        c = self.counts
        committed, heard, matched = c["committed_words"], c["heard_words"], c["matched_words"]
        minutes = self.speech_s / 60
        return {
            # Full-Duplex-Bench v1
            "tor_interruption": rate(c["interruptions_taken_over"], c["interruptions"]),
            "tor_backchannel": rate(c["backchannels_taken_over"], c["backchannels"]),
            "tor_pause": rate(c["pauses_taken_over"], c["user_pauses"]),
            "response_ms": distribution(self.response_s),
            "interruption_response_ms": distribution(self.interruption_response_s),
            # Full-Duplex-Bench v1.5-style outcome per overlap event
            "outcomes": {
                kind: {o: c[f"{kind}_{o}"] for o in OUTCOMES}
                for kind in ("interruption", "non_interruption")
            },
            "stop_ms": distribution(self.stop_s),
            "false_stop_ms": distribution(self.false_stop_s),
            # SID-style, over non-interruption overlap events
            "false_interruption_rate": rate(c["false_items_hit"], c["false_items"]),
            "false_cancel_rate": rate(c["false_items_cancelled"], c["false_items"]),
            "disruptions_per_item": rate(c["disruptions"], c["false_items"]),
            "ducks_per_item": rate(c["ducks"], c["false_items"]),
            "duck_ms": distribution(self.duck_s),
            # per floor decision
            "false_alarms_per_min": {
                "value": round(c["false_alarms"] / minutes, 3) if minutes else None,
                "n": c["false_alarms"],
                "minutes": round(minutes, 4),
            },
            "false_cancels": c["false_alarms_cancelled"],
            "unmatched_decisions": c["unmatched_decisions"],
            "missed_interruption_rate": rate(c["interruptions_missed"], c["interruptions"]),
            "missed_1500ms_rate": rate(c["interruptions_missed_1500"], c["interruptions"]),
            "barge_in_detection_ms": distribution(self.detection_s),
            "detection_after_word_ms": distribution(self.after_word_s),
            "reaction_ms": distribution(self.reaction_s),
            "egress_flush_ms": distribution(self.flush_s),
            "premature_turn_rate": rate(c["pauses_premature"], c["user_pauses"]),
            "resume_rate": rate(c["false_alarms_resumed"], c["false_pauses"]),
            "resume_gap_ms": distribution(self.resume_gap_s),
            "context_precision": rate(matched, committed),
            "context_recall": rate(matched, heard),
            "committed_unheard_words": committed - matched,
            "wasted_tokens": c["wasted_tokens"],
            "wasted_tts_ms": c["wasted_tts_ms"],
            "expectations_failed": rate(c["expectations_failed"], c["items"]),
            # the non-interruption figures per kind (each over that kind's overlapped items)
            "by_kind": {
                kind: {
                    "false_interruption_rate": rate(c[f"{kind}.decided"], c[f"{kind}.items"]),
                    "false_cancel_rate": rate(c[f"{kind}.cancelled"], c[f"{kind}.items"]),
                    "disruptions_per_item": rate(c[f"{kind}.disruptions"], c[f"{kind}.items"]),
                    "ducks_per_item": rate(c[f"{kind}.ducks"], c[f"{kind}.items"]),
                }
                for kind in BY_KIND
            },
            "assistant_speech_s": round(self.speech_s, 4),
            "counts": dict(sorted(c.items())),
        }


OUTCOMES = ("respond", "resume", "stop", "ignore")
BY_KIND = ("backchannel", "noise", "side_talk", "echo")  # the non-interruption kinds, in order


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank (`bargein.stats.nearest_rank`), the definition of every bargein figure;
    `q` is a fraction (0.9 for p90)."""
    return nearest_rank(values, 100 * q)


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


def rate(num: int, den: int) -> dict[str, Any]:
    """A rate with its numerator and denominator (value None when nothing was counted)."""
    return {"value": round(num / den, 4) if den else None, "n": num, "of": den}
