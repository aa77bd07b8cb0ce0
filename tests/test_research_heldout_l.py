"""`heldout_l`, the twelfth held-out set (written by an outside tester from README,
docs/research.md's intro, scenario format, metrics and starter sections and its heldout_j /
heldout_k paragraphs, --help, `research list` and `research check --help`, the shared
recordings and their README, the starter TOMLs, heldout_k's TOMLs and word alignments (as format
and data), align.py, scenario.py and the heldout survey alone; no policy, decide or actor code;
frozen unrun). Its convention: every backchannel, interruption and correction is cut from the
user's own recording (the request's or opening pause's file and channel; collage transcripts
over that voice's aligned word spans); any other recording is side talk, whatever it says. A
different recording is the user in each of its 12 scenarios (bakery counter, launch dock,
recording booth, bike shop, hospital reception, theatre foyer, farm shop, a speakerphone call in
a car, lecture hall, night bus, vet's waiting room, office kitchen). Levels over an item's first
0.8 s against the user's first turn: 12 interruptions in each of three bands (-6..-3,
-1.5..+1.5, +2..+4 dB), side talk half near the user (-1.5..+1.5 dB, another voice) and half far
below (-16..-9 dB), backchannels -6..-1 dB; nine echo windows (20-350 ms, RT60 0-900 ms). Hard
cases: the user's own interruptions at their level with no interrupt or backchannel word in their
first two words, some addressing the assistant ("can you", "could you", "tell me", "what do you
mean") and some plain statements; corrections opening "no"/"actually" + content; two-word and
repeated backchannels; side talk at the user's level asking or telling someone else something,
and side talk far below holding "stop", "wait", "excuse me" or "please"; the user interrupting
inside our echo; noise right before a backchannel. No policy runs here: the set stays unseen
until its one scored run."""

from __future__ import annotations

from functools import lru_cache

from bargein.testing.heldout_survey import (
    BACKCHANNEL_WORDS,
    KINDS,
    Conventions,
    Survey,
    survey,
)

# how a question or a command to someone else opens
ADDRESSED = {
    "can", "could", "would", "did", "do", "is", "are", "have", "where", "what", "when",
    "go", "pass", "hand", "keep", "put", "get", "don't", "come", "give", "take",
}  # fmt: skip
# how the user's interruption addresses the assistant (its first two words)
TO_US = {("can", "you"), ("could", "you"), ("tell", "me"), ("what", "do")}
# words a far-off voice may hold that sound like a command
FAR_COMMANDS = {"stop", "wait", "excuse", "please"}


@lru_cache(maxsize=1)
def held_l() -> Survey:
    """The set built and surveyed once for both tests (12 scenarios: a few seconds each time)."""
    return survey("heldout_l")


def test_heldout_l_loads_builds_and_keeps_its_conventions() -> None:
    held_l().check_conventions(Conventions(
        "hl_", no_room_delay=20, reverberant=5, delays=(20, 350), longest_rt60=900,
        interruptions=((-6.0, -3.0), (-1.5, 1.5), (2.0, 4.0)),
        side_talk=((-1.5, 1.5), (-16.0, -9.0)), kinds={**KINDS, "noise": 13}))


def test_heldout_l_holds_the_hard_cases_it_was_written_for() -> None:
    held = held_l()
    levels = held.item_db
    truths = held.by_key
    held.check_interruptions_timed()
    first_two = held.first_words(2)
    plain_near = held.plain_interruptions(-1.5, 1.5)
    assert len(plain_near) >= 10, plain_near
    # the user's interruptions that address us, and plain statements, at every level
    to_us = [
        k for k, (kind, _) in levels.items()
        if kind == "true_interruption" and tuple(first_two[k]) in TO_US
    ]  # fmt: skip
    assert len(to_us) >= 8, to_us
    statements = [
        k for k, (kind, _) in levels.items()
        if kind == "true_interruption" and first_two[k][0] in ("the", "my", "i")
    ]  # fmt: skip
    assert len(statements) >= 8, statements
    no_actually = [
        k for k, t in truths.items()
        if t.kind == "correction" and t.words[0][2] in ("no", "actually") and len(t.words) >= 3
    ]  # fmt: skip
    assert len(no_actually) == 12, no_actually
    runs = [
        k for k, t in truths.items()
        if t.kind == "backchannel" and len(t.words) >= 2
        and all(w in BACKCHANNEL_WORDS for _, _, w in t.words)
    ]  # fmt: skip
    assert len(runs) >= 12, runs
    near_st = [k for k, (kind, db) in levels.items() if kind == "side_talk" and -1.5 <= db <= 1.5]
    addressed = [k for k in near_st if first_two[k][0] in ADDRESSED]
    assert len(addressed) >= 6 and len(near_st) - len(addressed) >= 5, (addressed, near_st)
    far_commands = [
        k for k, (kind, db) in levels.items()
        if kind == "side_talk" and -16.0 <= db <= -9.0
        and {w for _, _, w in truths[k].words} & FAR_COMMANDS
    ]  # fmt: skip
    assert len(far_commands) >= 4, far_commands
    in_echo, noise_then_bc = held.interruptions_in_echo, held.backchannels_after_noise
    assert len(in_echo) >= 6, in_echo
    assert len(noise_then_bc) >= 8, noise_then_bc
