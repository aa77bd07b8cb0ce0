"""`heldout_h`, the eighth held-out set (written in session 8 from README, the scenario-format
docs and --help alone, as an outside tester would; frozen unrun), loads, builds, and holds what it
was written to hold. Its convention: every backchannel, interruption and correction is in the
user's own recording (the request's or opening pause's file and channel); any other recording is
side talk, whatever it says. A different recording is the user in every scenario; interruptions
3-7 dB below the user's first turn and others louder; side talk near the user's level and far
below; echo windows of several delays and rooms (one with no room); two user pauses opening
their scenarios. No policy runs here: the set stays unseen until its one scored run."""

from __future__ import annotations

from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.testing.heldout_survey import survey


def test_heldout_h_loads_builds_and_keeps_its_conventions() -> None:
    held = survey("heldout_h")
    assert 12 <= len(held.scenarios) <= 14
    assert all(35.0 <= s <= 55.0 for s in held.seconds.values()), held.seconds
    held.check_timed_over_replies()
    kinds, echoes = held.kinds, held.echoes
    assert len(echoes) >= 6 and (40, 0) in echoes, echoes  # one echo with no room
    assert sum(300 <= rt60 <= 900 for _, rt60 in echoes) >= 4, echoes  # reverberant rooms
    quiet, loud = held.interruptions_within(-7.0, -3.0), held.interruptions_within(1.5, 99.0)
    near, far = held.side_talk_within(-3.0, 3.0), held.side_talk_within(-99.0, -8.0)
    assert quiet >= 10 and loud >= 10 and near >= 6 and far >= 6, (quiet, loud, near, far)
    assert kinds["user_pause"] == 2
    assert kinds["true_interruption"] >= 24 and kinds["correction"] >= 10, kinds
    assert sum(kinds[k] for k in INTERRUPTIONS) >= 36, kinds
    assert sum(kinds[k] for k in NON_INTERRUPTIONS) >= 70, kinds
    assert min(kinds[k] for k in ("noise", "side_talk", "echo")) >= 6, kinds
    assert kinds["backchannel"] >= 30, kinds
