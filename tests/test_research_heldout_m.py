"""`heldout_m`, the thirteenth held-out set (written by an outside tester from README,
docs/research.md's intro, scenario format, metrics and starter sections and its heldout_k /
heldout_l paragraphs, --help, `research list` and `research check --help`, the shared recordings
and their README, the starter TOMLs, heldout_l's TOMLs and word alignments (as format and data),
align.py, scenario.py and the heldout survey alone; no policy, decide or actor code; frozen
unrun). Its convention: every backchannel, interruption and correction is cut from the user's own
recording (the request's or opening pause's file and channel; collage transcripts over that
voice's aligned word spans); any other recording is side talk, whatever it says. A different
recording is the user in each of its 12 scenarios (a dentist's chair, a ferry deck, a petrol
station, a newsroom, a hotel lift, a campsite kitchen, a tram, a hardware store, a school gate, a
hairdresser's sink, a taxi rank, a home office with a baby monitor). Levels over an item's first
0.8 s against the user's first turn: 12 interruptions in each of three bands (-6..-3,
-1.5..+1.5, +2..+5 dB), side talk half near the user (-1.5..+1.5 dB, another voice) and half far
below (-16..-8 dB), backchannels -6..-1 dB; nine echo windows (20-350 ms, RT60 0-900 ms). Hard
cases: the user's own interruptions at their level with no interrupt or backchannel word in their
first two words; interruptions that ask us to do something ("can you turn", "could you set",
"play", "call", "tell me") and plain statements ("the", "my"); a short word then a pause ("wait
... which", "so ... what about"); corrections opening "no" / "actually" / "sorry" + content;
two-word and repeated backchannels, some said right as a reply starts (the first reply's, or the
answer to an interruption's); side talk at the user's level asking someone else to do something
with their hands or things ("could you hold", "did you lock", "can you grab", "pass me"), and
side talk far below holding "stop", "wait", "sorry" or "please"; the user interrupting inside our
echo; noise right before a backchannel. No policy runs here: the set stays unseen until its one
scored run."""

from __future__ import annotations

from functools import lru_cache
from itertools import pairwise

from bargein.research.scenario import INTERRUPTIONS
from bargein.testing.heldout_survey import (
    BACKCHANNEL_WORDS,
    Conventions,
    Survey,
    survey,
)

# how a question or a command to someone else opens
ADDRESSED = {
    "can", "could", "would", "did", "do", "is", "are", "have", "where", "what", "when",
    "go", "pass", "hand", "keep", "put", "get", "don't", "come", "give", "take",
}  # fmt: skip
# how the user's interruption asks us to do something (its first two words, or its first word)
TO_US = {("can", "you"), ("could", "you"), ("tell", "me")}
TO_US_VERBS = {"play", "call", "set", "turn"}
# words a far-off voice may hold that sound like a command
FAR_COMMANDS = {"stop", "wait", "excuse", "please", "sorry"}


@lru_cache(maxsize=1)
def held_m() -> Survey:
    """The set built and surveyed once for both tests (12 scenarios: a few seconds each time)."""
    return survey("heldout_m")


def test_heldout_m_loads_builds_and_keeps_its_conventions() -> None:
    # the first item over the reply >= 1.75 s after the user's turn (past the reply's first
    # audio, ~1.57 s after it); a backchannel 1.75-2.0 s after an interruption is said as the
    # answer to it would start (the deliberate overlaps of this set)
    held_m().check_conventions(Conventions(
        "hm_", no_room_delay=55, reverberant=6, delays=(20, 350), longest_rt60=900,
        interruptions=((-6.0, -3.0), (-1.5, 1.5), (2.0, 5.0)),
        side_talk=((-1.5, 1.5), (-16.0, -8.0)), first_s=1.75,
        backchannel_after=(1.75, 2.0)))


def test_heldout_m_holds_the_hard_cases_it_was_written_for() -> None:
    held = held_m()
    levels = held.item_db
    truths = held.by_key
    held.check_interruptions_timed()
    first_two = held.first_words(2)
    plain_near = held.plain_interruptions(-1.5, 1.5)
    assert len(plain_near) >= 9, plain_near
    # the user's interruptions that ask us to do something, and plain statements
    to_us = [
        k for k, (kind, _) in levels.items()
        if kind == "true_interruption"
        and (tuple(first_two[k]) in TO_US or first_two[k][0] in TO_US_VERBS)
    ]  # fmt: skip
    assert len(to_us) >= 12, to_us
    statements = [
        k for k, (kind, _) in levels.items()
        if kind == "true_interruption" and first_two[k][0] in ("the", "my")
    ]  # fmt: skip
    assert len(statements) >= 8, statements
    # a short first word, then a pause before the next ("wait ... which", "so ... what about")
    short_then_pause = [
        k for k, t in truths.items()
        if t.kind in INTERRUPTIONS and len(t.words) >= 3
        and t.words[0][1] - t.words[0][0] <= 0.65 and t.words[1][0] - t.words[0][1] >= 0.14
    ]  # fmt: skip
    assert len(short_then_pause) >= 3, short_then_pause
    openers = [t.words[0][2] for t in truths.values() if t.kind == "correction"]
    assert all(len(t.words) >= 3 for t in truths.values() if t.kind == "correction")
    assert sorted(openers) == ["actually"] * 4 + ["no"] * 5 + ["sorry"] * 3, openers
    runs = [
        k for k, t in truths.items()
        if t.kind == "backchannel" and len(t.words) >= 2
        and all(w in BACKCHANNEL_WORDS for _, _, w in t.words)
    ]  # fmt: skip
    assert len(runs) >= 18, runs
    # backchannels said as a reply starts: 1.75-2.0 s after the user's turn or an interruption
    as_reply_starts = []
    for name, ts in held.truths.items():
        speech = sorted((t for t in ts if t.kind != "echo"), key=lambda t: t.onset)
        as_reply_starts += [
            f"{name}/{nxt.label}" for prev, nxt in pairwise(speech)
            if nxt.kind == "backchannel" and prev.kind != "noise"
            and 1.75 <= nxt.onset - prev.offset < 2.0
        ]  # fmt: skip
    assert len(as_reply_starts) >= 8, as_reply_starts
    near_st = [k for k, (kind, db) in levels.items() if kind == "side_talk" and -1.5 <= db <= 1.5]
    addressed = [k for k in near_st if first_two[k][0] in ADDRESSED]
    assert len(addressed) >= 6 and len(near_st) - len(addressed) >= 6, (addressed, near_st)
    far_commands = [
        k for k, (kind, db) in levels.items()
        if kind == "side_talk" and -16.0 <= db <= -8.0
        and {w for _, _, w in truths[k].words} & FAR_COMMANDS
    ]  # fmt: skip
    assert len(far_commands) >= 6, far_commands
    in_echo, noise_then_bc = held.interruptions_in_echo, held.backchannels_after_noise
    assert len(in_echo) >= 16, in_echo
    assert len(noise_then_bc) >= 10, noise_then_bc
