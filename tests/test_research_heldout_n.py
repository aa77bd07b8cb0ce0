"""`heldout_n`, the fourteenth held-out set (written by an outside tester from README,
docs/research.md's intro, scenario format, metrics and starter sections and its heldout_k /
heldout_l / heldout_m paragraphs, --help, `research list` and `research check --help`, the shared
recordings and their README, heldout_m's and heldout_l's TOMLs and word alignments (as format and
data), this test's model (tests/test_research_heldout_m.py) and the heldout survey alone; no
policy, decide or actor code; frozen unrun). Its convention: every backchannel, interruption and
correction is cut from the user's own recording (the request's or opening pause's file and
channel; collage transcripts over that voice's word spans); any other recording is side talk,
whatever it says. A different recording is the user in each of its 12 scenarios (a post office
counter, a coach station, an allotment, a laundrette, an airport gate, a ski chalet, a garden
centre, a building site, a checkout queue, a car wash, a cinema lobby, a kitchen table). Levels
over an item's first 0.8 s against the user's first turn: 12 interruptions in each of three bands
(-5..-3, -1..+1, +2.5..+4.5 dB), side talk half near the user (-1.5..+1.5 dB, another voice) and
half far below (-15..-9 dB), backchannels -6..-1 dB; nine echo windows (35-370 ms, RT60 0-950
ms). Hard cases: the user's plain statement 1-3 s after a side talker in the room finished, both
inside our echo; an interruption that opens with the user's own backchannel and then a question
("uh huh can we", "mm okay is it"); corrections opening "no" then a pause before the content;
a user who speaks softer as the conversation goes on (interruptions loud, then near, then quiet;
backchannels falling); two-word and repeated backchannels, some said as a reply starts; side talk
at the user's level asking someone else to do something with their hands or things, asking
someone else a question ("is this the right platform") or stating something; far side talk
holding "stop", "wait", "sorry" or "excuse me"; noise right before a backchannel. No policy runs
here: the set stays unseen until its one scored run."""

from __future__ import annotations

from collections import defaultdict
from functools import lru_cache
from itertools import pairwise

from bargein.research.scenario import INTERRUPTIONS
from bargein.testing.heldout_survey import (
    BACKCHANNEL_WORDS,
    Conventions,
    Survey,
    survey,
)

# how side talk at the user's level opens: a request to someone else for their hands or things,
# a question to someone else, a plain statement
TO_OTHERS_HANDS = {"can", "hand", "hold", "pass", "grab"}
TO_OTHERS_QUESTIONS = {"is", "where"}
STATEMENTS = {"the", "my"}
# how a question opens after the user's own backchannel ("uh huh can we", "mm okay is it")
QUESTION_STARTS = {"can", "could", "is", "are", "where", "what"}
# words a far-off voice may hold that sound like a command
FAR_COMMANDS = {"stop", "wait", "excuse", "please", "sorry"}
# bands over the first 0.8 s against the user's first turn (dB)
QUIET, NEAR, LOUD = (-5.0, -3.0), (-1.0, 1.0), (2.5, 4.5)


@lru_cache(maxsize=1)
def held_n() -> Survey:
    """The set built and surveyed once for both tests (12 scenarios: a few seconds each time)."""
    return survey("heldout_n")


def _gaps_allowed(prev_kind: str, nxt_kind: str, prev_db: float | None, gap: float) -> bool:
    """The deliberate short gaps of this set (everything else is >= 2.8 s apart)."""
    if prev_kind == "noise" and nxt_kind == "backchannel" and gap < 1.0:
        return True  # a noise right before a backchannel
    if prev_kind in INTERRUPTIONS and nxt_kind == "backchannel" and 1.75 <= gap < 2.0:
        return True  # a backchannel as the answer to an interruption would start
    near = prev_db is not None and -1.5 <= prev_db <= 1.5
    # the user's statement 1-3 s after a side talker in the room finished
    to_user = nxt_kind == "true_interruption" and 1.0 <= gap <= 3.0
    return prev_kind == "side_talk" and near and to_user


def test_heldout_n_loads_builds_and_keeps_its_conventions() -> None:
    held = held_n()
    # the first item over the reply >= 1.65 s after the user's turn (just past the reply's first
    # audio, ~1.57 s after it); the shared spacing check with this set's shortest allowed gap,
    # then (below) every gap against the set's own exceptions
    held.check_conventions(Conventions(
        "hn_", seconds=(38.0, 55.0), no_room_delay=75, reverberant=6, delays=(35, 370),
        longest_rt60=950, interruptions=(QUIET, NEAR, LOUD),
        side_talk=((-1.5, 1.5), (-15.0, -9.0)), first_s=1.65, gap_s=1.0,
        backchannel_after=(1.75, 2.0)))
    # every scenario: three interruptions, one in each band; three backchannels; one near and
    # one far side talk
    per: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for key, (kind, db) in held.item_db.items():
        per[key.split("/")[0]].append((kind, db))
    for name, items in per.items():
        ints = [db for kind, db in items if kind in INTERRUPTIONS]
        bands = [any(lo <= db <= hi for db in ints) for lo, hi in (QUIET, NEAR, LOUD)]
        assert len(ints) == 3 and all(bands), (name, ints)
        assert sum(kind == "backchannel" for kind, _ in items) == 3, name
        st = sorted(db for kind, db in items if kind == "side_talk")
        assert len(st) == 2 and -15.0 <= st[0] <= -9.0 and -1.5 <= st[1] <= 1.5, (name, st)
    for name, truths in held.truths.items():
        speech = sorted((t for t in truths if t.kind != "echo"), key=lambda t: t.onset)
        for prev, nxt in pairwise(speech[1:]):
            gap = nxt.onset - prev.offset
            prev_db = held.item_db.get(f"{name}/{prev.label}", ("", None))[1]
            assert gap >= 2.8 or _gaps_allowed(prev.kind, nxt.kind, prev_db, gap), (
                name,
                prev.label,
                nxt.label,
                gap,
            )


def test_heldout_n_holds_the_hard_cases_it_was_written_for() -> None:
    held = held_n()
    levels = held.item_db
    truths = held.by_key
    held.check_interruptions_timed()
    first_two = held.first_words(2)
    first_three = held.first_words(3)
    plain_near = held.plain_interruptions(NEAR[0], NEAR[1])
    assert len(plain_near) >= 6, plain_near
    # the user's own backchannel, then a question: "uh huh can we", "mm okay is it"
    bc_then_question = [
        k for k, (kind, _) in levels.items()
        if kind == "true_interruption" and len(first_three[k]) == 3
        and all(w in BACKCHANNEL_WORDS for w in first_three[k][:2])
        and first_three[k][2] in QUESTION_STARTS
    ]  # fmt: skip
    assert len(bc_then_question) >= 5, bc_then_question
    # corrections: "no" (5), "actually" (3), "sorry" (4) + content; four "no" then a pause
    openers = [t.words[0][2] for t in truths.values() if t.kind == "correction"]
    assert all(len(t.words) >= 3 for t in truths.values() if t.kind == "correction")
    assert sorted(openers) == ["actually"] * 3 + ["no"] * 5 + ["sorry"] * 4, openers
    no_then_pause = [
        k for k, t in truths.items()
        if t.kind == "correction" and t.words[0][2] == "no"
        and 0.15 <= t.words[1][0] - t.words[0][1] <= 0.7
    ]  # fmt: skip
    assert len(no_then_pause) >= 4, no_then_pause
    runs = [
        k for k, t in truths.items()
        if t.kind == "backchannel" and len(t.words) >= 2
        and all(w in BACKCHANNEL_WORDS for _, _, w in t.words)
    ]  # fmt: skip
    assert len(runs) >= 20, runs
    # backchannels said as a reply starts: 1.65-2.0 s after the user's turn (the first reply's
    # first audio), 1.75-2.0 s after an interruption (the answer to it)
    as_reply_starts = []
    softer_later = []  # interruptions each >= 1.5 dB softer than the last, backchannels falling
    for name, ts in held.truths.items():
        speech = sorted((t for t in ts if t.kind != "echo"), key=lambda t: t.onset)
        as_reply_starts += [
            f"{name}/{nxt.label}" for prev, nxt in pairwise(speech)
            if nxt.kind == "backchannel"
            and ((prev is speech[0] and 1.65 <= nxt.onset - prev.offset < 2.0)
                 or (prev.kind in INTERRUPTIONS and 1.75 <= nxt.onset - prev.offset < 2.0))
        ]  # fmt: skip
        ints = [levels[f"{name}/{t.label}"][1] for t in speech if t.kind in INTERRUPTIONS]
        bcs = [levels[f"{name}/{t.label}"][1] for t in speech if t.kind == "backchannel"]
        if all(a - b >= 1.5 for a, b in pairwise(ints)) and all(a > b for a, b in pairwise(bcs)):
            softer_later.append(name)
    assert len(as_reply_starts) >= 12, as_reply_starts
    assert len(softer_later) >= 5, softer_later
    near_st = [k for k, (kind, db) in levels.items() if kind == "side_talk" and -1.5 <= db <= 1.5]
    hands = [k for k in near_st if first_two[k][0] in TO_OTHERS_HANDS]
    questions = [k for k in near_st if first_two[k][0] in TO_OTHERS_QUESTIONS]
    statements = [k for k in near_st if first_two[k][0] in STATEMENTS]
    assert len(hands) == len(questions) == len(statements) == 4, (hands, questions, statements)
    far_commands = [
        k for k, (kind, db) in levels.items()
        if kind == "side_talk" and -15.0 <= db <= -9.0
        and {w for _, _, w in truths[k].words} & FAR_COMMANDS
    ]  # fmt: skip
    assert len(far_commands) >= 10, far_commands
    in_echo, noise_then_bc = held.interruptions_in_echo, held.backchannels_after_noise
    after_side_talk = []  # a plain statement in our echo 1-3 s after a side talker finished
    for name, ts in held.truths.items():
        speech = sorted((t for t in ts if t.kind != "echo"), key=lambda t: t.onset)
        for echo in (t for t in ts if t.kind == "echo"):
            inside = [t for t in speech if echo.onset < t.onset and t.offset < echo.offset]
            after_side_talk += [
                f"{name}/{nxt.label}" for prev, nxt in pairwise(inside)
                if prev.kind == "side_talk" and -1.5 <= levels[f"{name}/{prev.label}"][1] <= 1.5
                and nxt.kind == "true_interruption" and nxt.words[0][2] in STATEMENTS
                and 1.0 <= nxt.onset - prev.offset <= 3.0
            ]  # fmt: skip
    assert len(in_echo) >= 19, in_echo
    assert len(after_side_talk) >= 7, after_side_talk
    assert len(noise_then_bc) >= 10, noise_then_bc
