"""`heldout_j`, the tenth held-out set (written from README, docs/research.md's scenario format
and starter scenarios, --help and `research list` alone, as an outside tester would; frozen
unrun), loads, builds, and holds what it was written to hold. Its convention: every backchannel,
interruption and correction is in the user's own recording (the request's or opening pause's
file and channel); any other recording is side talk, whatever it says. A different recording is
the user in each of its 12 scenarios (ferry, hair salon, bank queue, bus depot, radio studio,
market stall, airport gate, camp site, bowling alley, laundromat, hospital ward, post office);
interruptions 3-7 dB below the user's first turn, near it and louder; backchannels 1-6 dB below
it; side talk near the user's level and far below; nine echo windows of different delays
(20-320 ms) and rooms (one with no room); two user pauses opening their scenarios; interruptions
that open with a backchannel word, one-word interruptions, and side talk over the user's own
backchannel. No policy runs here: the set stays unseen until its one scored run."""

from __future__ import annotations

from functools import lru_cache

from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.testing.heldout_survey import Survey, survey

OPENERS = {"yeah", "okay", "right", "oh", "mm"}  # backchannel words an interruption opens with


@lru_cache(maxsize=1)
def held_j() -> Survey:
    """The set built and surveyed once for both tests (12 scenarios: a few seconds each time)."""
    return survey("heldout_j")


def test_heldout_j_loads_builds_and_keeps_its_conventions() -> None:
    held = held_j()
    held.check_scenarios("hj_")
    kinds = held.kinds
    held.check_echo_rooms(20, rooms=8, reverberant=5, delays=(20, 320))
    quiet, loud = held.interruptions_within(-7.0, -3.0), held.interruptions_within(1.5, 99.0)
    near = held.interruptions_within(-2.0, 1.0)
    assert quiet >= 12 and near >= 12 and loud >= 12, (quiet, near, loud)
    near_st, far_st = held.side_talk_within(-3.0, 3.0), held.side_talk_within(-99.0, -8.0)
    assert near_st >= 12 and far_st >= 12, (near_st, far_st)
    bc_db = held.db_of("backchannel")
    assert len(bc_db) >= 36 and all(-6.0 <= db <= -1.0 for db in bc_db), bc_db
    assert kinds["user_pause"] == 2 and kinds["request"] == 10, kinds
    assert kinds["true_interruption"] >= 24 and kinds["correction"] >= 12, kinds
    assert sum(kinds[k] for k in INTERRUPTIONS) >= 36, kinds
    assert sum(kinds[k] for k in NON_INTERRUPTIONS) >= 80, kinds
    assert kinds["backchannel"] >= 36 and kinds["side_talk"] >= 24, kinds
    assert kinds["noise"] >= 12 and kinds["echo"] >= 8, kinds
    shapes = {it.shape for s in held.scenarios for it in s.items if it.source == "noise"}
    assert shapes == {"cough", "clicks", "steady"}, shapes


def test_heldout_j_holds_the_hard_cases_it_was_written_for() -> None:
    held = held_j()
    interruptions = [
        t for truths in held.truths.values() for t in truths if t.kind in INTERRUPTIONS
    ]
    assert all(t.words for t in interruptions)  # every interruption's words are timed
    opened = [t.label for t in interruptions if len(t.words) > 1 and t.words[0][2] in OPENERS]
    one_word = [t.label for t in interruptions if len(t.words) == 1]
    assert len(opened) >= 6 and len(one_word) >= 6, (opened, one_word)
    overlapped = []  # side talk that overlaps the user's own backchannel
    for name, truths in held.truths.items():
        for st in (t for t in truths if t.kind == "side_talk"):
            for bc in (t for t in truths if t.kind == "backchannel"):
                if st.onset < bc.onset and bc.offset <= st.offset:
                    overlapped.append(f"{name}/{bc.label}")
    assert len(overlapped) >= 4, overlapped
