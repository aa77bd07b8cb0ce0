"""Interruption metrics from one run: pure functions of the event stream (as the JSON dicts of
trace.jsonl), the ground truth, the assistant audio heard and the assistant words heard. Every
latency is a difference of two stamps on the session clock; every rate a count over labelled
overlap events or floor decisions, with its denominator kept beside it. Definitions (and how
they map onto Full-Duplex-Bench v1/v1.5 and SID-style figures) are in docs/research.md; this
module is their executable form.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bargein.research.audio import Truth
from bargein.research.samples import OUTCOMES, Samples, distribution, percentile, rate
from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS, USER_TURNS

# Re-exported: the figures' helpers live in samples.py.
__all__ = [
    "OUTCOMES",
    "Samples",
    "compute",
    "distribution",
    "episodes",
    "item_outcomes",
    "percentile",
    "rate",
    "words",
]

EventDict = Mapping[str, Any]
Segment = tuple[float, float, int]  # assistant audio heard: start, end, turn
HeardWord = tuple[float, int, str]  # assistant word heard whole: start, turn, text

# A floor decision belongs to an item when the VAD's onset lies in [onset - slack, offset]: the
# VAD dates an onset up to its onset window before the first voiced frame it confirms.
ONSET_SLACK_S = 0.25
# An interruption is handled when the assistant's audio stops within this long of its onset
# (a natural end counts: the user got the floor); later, or never, it was missed.
YIELD_WINDOW_S = 1.0
# Issue 14's target counts an interruption missed with no take-over within 1.5 s.
TARGET_YIELD_WINDOW_S = 1.5
# Full-Duplex-Bench v1: a take-over is assistant output of >= 1 s or > 3 words.
TAKEOVER_MIN_S = 1.0
TAKEOVER_MIN_WORDS = 4
# A false pause at least this long is an audible disruption (a cancel always is; a duck that
# restored is not: the reply went on, quieter). Issue 14's definition.
AUDIBLE_PAUSE_S = 0.15
SMOOTH = USER_TURNS  # turns whose transition to the reply the smooth-turn figures score
_EPS = 1e-9


def _ms(seconds: float) -> float:
    return round(1000 * seconds, 3) + 0.0  # + 0.0: no "-0.0" in reports


def words(text: str) -> list[str]:
    return [w for w in re.sub(r"[^\w' ]+", " ", text.lower()).split() if w]


def _of(events: Iterable[EventDict], *types: str) -> list[EventDict]:
    return [e for e in events if e["type"] in types]


# -- the assistant's side: turns, episodes of floor decisions ----------------------------------


@dataclass
class _Turn:
    id: int
    start: float
    end: float = math.inf


def _turns(events: Sequence[EventDict]) -> dict[int, _Turn]:
    turns: dict[int, _Turn] = {}
    for e in events:
        turn = e.get("turn")
        if e["type"] == "turn_started" and turn is not None:
            turns[int(turn)] = _Turn(int(turn), float(e["t"]))
        elif e["type"] in ("turn_cancelled", "turn_completed") and turn in turns:
            turns[int(turn)].end = float(e["t"])
    return turns


@dataclass
class Episode:
    """One floor decision against user speech: a pause (ending resumed, cancelled or with the
    turn), a duck (the reply ramped down: ending restored, cancelled or with the turn; a pause
    while ducked makes it a pause from then on) or a cancel with neither before it. Counted
    once, however long it lasts."""

    turn: int
    t: float  # when the first decision was taken
    onset: float | None  # the VAD's onset it acted on (None: words for an active turn)
    action: str = "pause"  # the first decision: "pause" | "duck" | "cancel"
    ended: str = "open"  # "resumed" | "restored" | "cancelled" | "turn_ended" | "open"
    pause_t: float | None = None  # when output was paused (None: never paused)
    paused_s: float | None = None  # pause length, for a resumed pause
    ducked_s: float | None = None  # duck length, for a restored duck
    cancel_t: float | None = None
    item: str | None = None  # the label it is attributed to (None: unmatched)


def episodes(events: Sequence[EventDict]) -> list[Episode]:
    out: list[Episode] = []
    live: dict[int, Episode] = {}  # the open episode of each turn
    for e in events:
        kind, turn, t = e["type"], int(e.get("turn") or 0), float(e["t"])
        ep = live.get(turn)
        if kind == "output_paused":
            if ep is not None and ep.action == "duck" and ep.pause_t is None:
                ep.pause_t = t  # a duck that escalated to a pause
            else:
                ep = live[turn] = Episode(turn, t, e.get("onset"), "pause", pause_t=t)
                out.append(ep)
        elif kind == "output_ducked" and ep is None:
            ep = live[turn] = Episode(turn, t, e.get("onset"), "duck")
            out.append(ep)
        elif kind == "output_resumed" and ep is not None and ep.pause_t is not None:
            del live[turn]
            ep.ended, ep.paused_s = "resumed", t - ep.pause_t
        elif kind == "output_restored" and ep is not None and ep.pause_t is None:
            del live[turn]
            ep.ended, ep.ducked_s = "restored", t - ep.t
        elif kind == "barge_in" and e.get("reason") == "barge_in":
            if ep is None:
                ep = Episode(turn, t, e.get("onset"), "cancel")
                out.append(ep)
            live.pop(turn, None)
            ep.ended, ep.cancel_t = "cancelled", t
        elif kind in ("turn_cancelled", "turn_completed") and ep is not None:
            del live[turn]
            ep.ended = "turn_ended"
    return out


def _attribute(ep: Episode, truths: Sequence[Truth]) -> Truth | None:
    """The one item an episode belongs to: among those whose [onset - slack, offset] holds the
    VAD's onset, a speech item before an echo window, then the latest onset. Without an onset
    (words for an active turn), the latest speech item that began before the decision. Double
    talk: a cancel whose VAD utterance began on our own echo and ran on into user speech that
    started before the cancel belongs to that speech (the latest such item): its words took
    the floor, not the echo. So does one the floor took on words inside the echo's utterance
    (a re-opened overlap: its onset is when the words were recognized, which is after they were
    spoken) from user speech that ended at most `ONSET_SLACK_S` before that onset."""
    if ep.onset is not None:
        at = float(ep.onset)
        found = [t for t in truths if t.onset - ONSET_SLACK_S <= at <= t.offset]
    else:
        found = [t for t in truths if t.onset <= ep.t]
    owner = max(found, key=lambda t: (t.kind != "echo", t.onset), default=None)
    if owner is not None and owner.kind == "echo" and ep.cancel_t is not None:
        start = float(ep.onset) if ep.onset is not None else ep.t
        talk = [
            t
            for t in truths
            if t.kind != "echo" and t.onset <= ep.cancel_t and t.offset >= start - ONSET_SLACK_S
        ]
        owner = max(talk, key=lambda t: t.onset, default=owner)
    return owner


def _turn_owner(truths: Sequence[Truth], start: float) -> str | None:
    """The item a turn answers: a user pause it started inside (a premature turn), else the
    speech item that ended last before it started (the user's words come from there)."""
    inside = [t for t in truths if t.kind == "user_pause" and t.onset < start < t.offset]
    if inside:
        return max(inside, key=lambda t: t.onset).label
    done = [t for t in truths if t.kind != "echo" and t.offset <= start + _EPS]
    return max(done, key=lambda t: t.offset).label if done else None


def _overlap_seconds(segments: Sequence[Segment], a: float, b: float) -> float:
    return sum(max(0.0, min(e, b) - max(s, a)) for s, e, _ in segments)


def assistant_state(turns: Mapping[int, _Turn], segments: Sequence[Segment], t: float) -> str:
    """What the assistant was doing at session time t: speaking, thinking or silent."""
    if any(s <= t < e for s, e, _ in segments):
        return "speaking"
    live = [x for x in turns.values() if x.start <= t < x.end]
    if not live:
        return "silent"
    latest = max(x.id for x in live)
    paused = any(s <= t and turn == latest for s, _, turn in segments)  # heard, now held
    return "speaking" if paused else "thinking"


def _overlapped(tr: Truth, turns: Mapping[int, _Turn], segments: Sequence[Segment]) -> str:
    """Did the item overlap the assistant: "speaking" (its audio was heard during the item),
    "thinking" (a turn was live but silent) or "none" (it never overlapped; out of every
    overlap denominator)."""
    if _overlap_seconds(segments, tr.onset, tr.offset) > 0:
        return "speaking"
    if any(x.start < tr.offset and x.end > tr.onset for x in turns.values()):
        return "thinking"
    return "none"


def _takeover(
    segments: Sequence[Segment],
    heard: Sequence[HeardWord],
    new_turns: set[int],
    a: float,
    b: float,
) -> bool:
    """Assistant output of new turns within [a, b): >= 1 s of audio or > 3 words."""
    mine = [s for s in segments if s[2] in new_turns]
    said = [w for w in heard if w[1] in new_turns and a <= w[0] < b]
    return _overlap_seconds(mine, a, b) >= TAKEOVER_MIN_S - _EPS or len(said) >= TAKEOVER_MIN_WORDS


def item_outcomes(
    events: Sequence[EventDict],
    truths: Sequence[Truth],
    segments: Sequence[Segment],
    heard: Sequence[HeardWord] = (),
) -> tuple[list[dict[str, Any]], list[Episode]]:
    """Per labelled item: what the assistant did about it; and every decision episode with the
    item it was attributed to."""
    turns = _turns(events)
    eps = episodes(events)
    for ep in eps:
        owner = _attribute(ep, truths)
        ep.item = owner.label if owner is not None else None
    cleared = _of(events, "output_cleared")
    owners = {x.id: _turn_owner(truths, x.start) for x in turns.values()}
    order = sorted(truths, key=lambda tr: tr.onset)
    speech_onsets = [t.onset for t in order if t.kind != "echo"]
    out: list[dict[str, Any]] = []
    for tr in order:
        nxt = min((o for o in speech_onsets if o > tr.onset + _EPS), default=math.inf)
        row: dict[str, Any] = tr.to_json()
        row["assistant_at_onset"] = assistant_state(turns, segments, tr.onset)
        row["expectation_met"] = tr.expect in ("any", row["assistant_at_onset"])
        row["overlap"] = _overlapped(tr, turns, segments)
        mine = [ep for ep in eps if ep.item == tr.label]
        row["decisions"] = len(mine)
        row["pauses_resumed"] = sum(ep.ended == "resumed" for ep in mine)
        row["pause_ms"] = [round(1000 * ep.paused_s, 3) for ep in mine if ep.paused_s is not None]
        row["ducks"] = sum(ep.action == "duck" for ep in mine)
        row["ducks_restored"] = sum(ep.ended == "restored" for ep in mine)
        row["duck_ms"] = [round(1000 * ep.ducked_s, 3) for ep in mine if ep.ducked_s is not None]
        # The reply's audio stopped for it (paused or cancelled); a duck keeps it playing.
        row["stopped"] = any(ep.pause_t is not None or ep.ended == "cancelled" for ep in mine)
        cancels = [ep for ep in mine if ep.ended == "cancelled"]
        row["cancelled"] = bool(cancels)
        if mine:
            row["first_decision_ms"] = _ms(mine[0].t - tr.onset)
        if cancels:
            ep = cancels[0]
            assert ep.cancel_t is not None
            row["detection_ms"] = _ms(ep.cancel_t - tr.onset)
            if tr.words:
                # A scripted word can be acted on once it is whole: how much of the detection
                # was the runtime's, after the first word's end (negative: before it).
                row["after_word_ms"] = _ms(ep.cancel_t - tr.words[0][1])
            clear = [c for c in cleared if c.get("turn") == ep.turn and c["t"] >= ep.cancel_t]
            if clear:
                row["flush_ms"] = _ms(clear[0]["t"] - ep.cancel_t)
        # The turns live at the onset, and when their audio first stopped after it.
        live = {x.id for x in turns.values() if x.start <= tr.onset < x.end}
        later = [s for s in segments if s[2] in live and s[1] > tr.onset]
        row["stop_ms"] = round(
            1000 * max(0.0, min((s[1] for s in later), default=tr.onset) - tr.onset), 3
        )
        # The turns that answer this item (see `_turn_owner`).
        new = {x.id for x in turns.values() if owners.get(x.id) == tr.label}
        first_new = min((s[0] for s in segments if s[2] in new), default=None)
        row["responded"] = first_new is not None
        if first_new is not None:
            row["response_ms"] = _ms(first_new - tr.offset)
        if tr.kind == "user_pause":
            row["taken_over"] = _takeover(segments, heard, new, tr.onset, tr.offset)
            row["premature_turns"] = sum(
                1 for x in turns.values() if tr.onset < x.start < tr.offset
            )
        else:
            row["taken_over"] = _takeover(segments, heard, new, tr.onset, nxt)
        if tr.kind in INTERRUPTIONS:
            row["missed"] = row["stop_ms"] > 1000 * YIELD_WINDOW_S + _EPS
        if row["overlap"] != "none":
            row["outcome"] = (
                "respond" if row["responded"]  # a new turn answered it
                else "stop" if cancels  # cancelled, nothing said after
                else "resume" if row["pauses_resumed"] or row["ducks_restored"]  # it went on
                else "ignore"  # the reply went on (or the silence stayed) regardless
            )  # fmt: skip
        out.append(row)
    return out, eps


def compute(
    events: Sequence[EventDict],
    truths: Sequence[Truth],
    segments: Sequence[Segment],
    heard: Sequence[HeardWord] = (),
) -> tuple[Samples, list[dict[str, Any]]]:
    events = sorted(events, key=lambda e: e["seq"])
    s = Samples()
    c = s.counts
    rows, eps = item_outcomes(events, truths, segments, heard)
    s.speech_s = sum(b - a for a, b, _ in segments)
    kinds = {t.label: t.kind for t in truths}
    for row in rows:
        kind = row["kind"]
        c["items"] += 1
        c["expectations_failed"] += not row["expectation_met"]
        if kind == "user_pause":
            c["user_pauses"] += 1
            c["pauses_premature"] += row["premature_turns"] > 0
            c["pauses_taken_over"] += row["taken_over"]
        if kind in SMOOTH and "response_ms" in row:
            s.response_s.append(row["response_ms"] / 1000)
        if row["overlap"] == "none":
            c["items_without_overlap"] += 1
            continue
        group = "interruption" if kind in INTERRUPTIONS else "non_interruption"
        if kind in INTERRUPTIONS | NON_INTERRUPTIONS:
            c[f"{group}_{row['outcome']}"] += 1
        decided = row["decisions"] > 0
        if kind in INTERRUPTIONS:
            c["interruptions"] += 1
            c["interruptions_taken_over"] += row["taken_over"]
            c["interruptions_missed"] += row["missed"]
            c["interruptions_missed_1500"] += row["stop_ms"] > 1000 * TARGET_YIELD_WINDOW_S + _EPS
            if "response_ms" in row:
                s.interruption_response_s.append(row["response_ms"] / 1000)
            if decided:
                s.stop_s.append(row["stop_ms"] / 1000)
                s.reaction_s.append(row["first_decision_ms"] / 1000)
            if row["cancelled"]:
                s.detection_s.append(row["detection_ms"] / 1000)
                if "after_word_ms" in row:
                    s.after_word_s.append(row["after_word_ms"] / 1000)
                if "flush_ms" in row:
                    s.flush_s.append(row["flush_ms"] / 1000)
        elif kind in NON_INTERRUPTIONS:
            c["false_items"] += 1
            c["false_items_hit"] += decided
            c["false_items_cancelled"] += row["cancelled"]
            c[f"{kind}.items"] += 1
            c[f"{kind}.decided"] += decided
            c[f"{kind}.cancelled"] += row["cancelled"]
            if row["stopped"]:  # a duck alone never stopped the audio: no stop latency
                s.false_stop_s.append(row["stop_ms"] / 1000)
            if kind == "backchannel":
                c["backchannels"] += 1
                c["backchannels_taken_over"] += row["taken_over"]

    # Per decision: every episode not attributed to an interruption is a false alarm.
    for ep in eps:
        kind = kinds.get(ep.item) if ep.item is not None else None
        if ep.item is None:
            c["unmatched_decisions"] += 1
        if kind in INTERRUPTIONS or kind in SMOOTH:
            continue  # a request or pause answered over a live turn is not a false alarm
        c["false_alarms"] += 1
        if ep.ended == "cancelled":
            c["false_alarms_cancelled"] += 1
        elif ep.pause_t is not None:
            c["false_pauses"] += 1
        else:  # ducked, never paused nor cancelled: not a disruption, counted apart
            c["false_ducks"] += 1
            if ep.item is not None:
                c["ducks"] += 1
                c[f"{kind}.ducks"] += 1
        if ep.ended == "resumed" and ep.paused_s is not None:
            c["false_alarms_resumed"] += 1
            s.resume_gap_s.append(ep.paused_s)
        if ep.ended == "restored" and ep.ducked_s is not None:
            c["false_ducks_restored"] += 1
            s.duck_s.append(ep.ducked_s)
        if ep.item is not None and (
            ep.ended == "cancelled" or (ep.paused_s or 0.0) >= AUDIBLE_PAUSE_S - _EPS
        ):
            c["disruptions"] += 1
            c[f"{kind}.disruptions"] += 1

    # Context fidelity and wasted work, per cancelled turn: a completed turn was sent whole and
    # commits it whole under every policy, so only interrupted turns tell the policies apart.
    c["turns_completed"] += len(_of(events, "turn_completed"))
    for e in _of(events, "turn_cancelled"):
        committed, heard_w = words(e["committed_text"]), words(e["heard_text"])
        c["turns_cancelled"] += 1
        c["committed_words"] += len(committed)
        c["heard_words"] += len(heard_w)
        c["matched_words"] += sum((Counter(committed) & Counter(heard_w)).values())
        generated = len(words(e["generated_text"]))
        unheard = max(0, generated - len(heard_w))
        c["wasted_tokens"] += round(e["tokens"] * unheard / generated) if generated else 0
        c["wasted_tts_ms"] += round(max(0.0, e["synthesized_ms"] - e["heard_ms"]))
    return s, rows
