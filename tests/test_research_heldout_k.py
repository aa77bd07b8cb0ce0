"""`heldout_k`, the eleventh held-out set (written by an outside tester from README,
docs/research.md's scenario format and starter scenarios, --help, `research list`, the shared
recordings' README, the starter TOMLs, align.py, scenario.py and the heldout survey alone; no
other held-out TOML, no policy, decide or actor code; frozen unrun). Its convention: every
backchannel, interruption and correction is cut from the user's own recording (the request's or
opening pause's file and channel; collage transcripts over that voice's aligned word spans);
any other recording is side talk, whatever it says. A different recording is the user in each
of its 12 scenarios (ski lift, pharmacy counter, train platform, kitchen, car park, library
desk, gym, hotel reception, museum, dentist's waiting room, garage workshop, school office).
Levels over an item's first 0.8 s against the user's first turn: interruptions in three bands
(-6..-3, -1.5..+1.5, +2..+4 dB), side talk half near the user (-1.5..+1.5 dB, another voice)
and half far below (-16..-9 dB), backchannels -6..-1 dB; nine echo windows (20-350 ms, RT60
0-900 ms). Hard cases: interruptions at the user's own level with no interrupt word or command
in their first two words, corrections opening "no"/"actually" + content, two-word and repeated
backchannels, side talk at the user's level asking or telling someone else something, the user
interrupting inside our echo, and noise right before a backchannel. No policy runs here: the
set stays unseen until its one scored run."""

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


@lru_cache(maxsize=1)
def held_k() -> Survey:
    """The set built and surveyed once for both tests (12 scenarios: a few seconds each time)."""
    return survey("heldout_k")


def test_heldout_k_loads_builds_and_keeps_its_conventions() -> None:
    held_k().check_conventions(Conventions(
        "hk_", no_room_delay=20, reverberant=5, delays=(20, 350), longest_rt60=900,
        interruptions=((-6.0, -3.0), (-1.5, 1.5), (2.0, 4.0)),
        side_talk=((-1.5, 1.5), (-16.0, -9.0)), kinds={**KINDS, "noise": 13}))


def test_heldout_k_holds_the_hard_cases_it_was_written_for() -> None:
    held = held_k()
    levels = held.item_db
    truths = held.by_key
    held.check_interruptions_timed()
    first_two = held.first_words(2)
    plain_near = held.plain_interruptions(-1.5, 1.5)
    assert len(plain_near) >= 8, plain_near
    no_actually = [
        k for k, t in truths.items()
        if t.kind == "correction" and t.words[0][2] in ("no", "actually") and len(t.words) >= 3
    ]  # fmt: skip
    assert len(no_actually) >= 6, no_actually
    runs = [
        k for k, t in truths.items()
        if t.kind == "backchannel" and len(t.words) >= 2
        and all(w in BACKCHANNEL_WORDS for _, _, w in t.words)
    ]  # fmt: skip
    assert len(runs) >= 6, runs
    addressed = [
        k for k, (kind, db) in levels.items()
        if kind == "side_talk" and -1.5 <= db <= 1.5 and first_two[k][0] in ADDRESSED
    ]  # fmt: skip
    assert len(addressed) >= 4, addressed
    in_echo, noise_then_bc = held.interruptions_in_echo, held.backchannels_after_noise
    assert len(in_echo) >= 3, in_echo
    assert len(noise_then_bc) >= 4, noise_then_bc
