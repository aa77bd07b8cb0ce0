"""`heldout_g`, the seventh held-out set (written from README, the scenario-format docs and
--help alone, as an outside tester would; frozen unrun), loads, builds, and holds what it was
written to hold: a different recording as the user in every scenario, the user's backchannels,
interruptions and corrections all in the request's own voice (anything said in another recording
is side talk, whatever its words), interruptions 4-8 dB below the request and others louder,
side talk near the user's level and far below it, reverberant echo rooms of different delays,
two user pauses (one opening a scenario, one later while the assistant is silent). No policy
runs here: the set stays unseen until its one scored run."""

from __future__ import annotations

from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.testing.heldout_survey import survey


def test_heldout_g_loads_builds_and_keeps_its_conventions() -> None:
    held = survey("heldout_g")
    assert len(held.scenarios) >= 9
    assert max(held.seconds.values()) < 60.0  # runs stay quick
    silent_pauses = 0
    for truths in held.truths.values():
        for t in truths:
            if t.kind == "user_pause":
                assert t.expect in ("any", "silent"), t
                silent_pauses += t.expect == "silent"
            elif t.kind not in ("request", "echo"):
                assert t.expect == "speaking", t  # every other item is timed over a reply
    kinds, echoes = held.kinds, held.echoes
    assert len(held.users) == len(held.scenarios), held.users  # a different user in each
    assert len(held.seeds) == len(set(held.seeds)), sorted(held.seeds)  # each its own seed
    assert len(echoes) >= 5 and all(rt60 > 0 for _, rt60 in echoes), echoes
    assert sum(300 <= rt60 <= 700 for _, rt60 in echoes) >= 4, echoes  # reverberant rooms
    quiet, loud = held.interruptions_within(-8.0, -4.0), held.interruptions_within(1.5, 99.0)
    near, far = held.side_talk_within(-3.0, 3.0), held.side_talk_within(-99.0, -8.0)
    assert quiet >= 8 and loud >= 8 and near >= 6 and far >= 5, (quiet, loud, near, far)
    assert {"backchannel", "noise", "side_talk", "echo", "true_interruption", "correction"} <= set(
        kinds
    )
    assert kinds["user_pause"] >= 2 and silent_pauses >= 1
    assert kinds["correction"] >= 5
    assert 18 <= sum(kinds[k] for k in INTERRUPTIONS) <= 22, kinds
    assert 45 <= sum(kinds[k] for k in NON_INTERRUPTIONS) <= 55, kinds
