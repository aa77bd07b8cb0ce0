"""`heldout_i`, the ninth held-out set (written in session 9 from README, the scenario-format
docs and --help alone, as an outside tester would; frozen unrun), loads, builds, and holds what it
was written to hold. Its convention: every backchannel, interruption and correction is in the
user's own recording (the request's or opening pause's file and channel); any other recording is
side talk, whatever it says. A different recording is the user in each of its 12 scenarios
(waiting room, call centre, taxi, classroom, supermarket, train, workshop, garden, gym, hotel
lobby, kitchen, pharmacy); interruptions 3-7 dB below the user's first turn, near it and
louder; side talk near the user's level and far below; eight echo windows of different delays
and rooms (one with no room); two user pauses opening their scenarios. No policy runs here: the
set stays unseen until its one scored run."""

from __future__ import annotations

from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.testing.heldout_survey import survey


def test_heldout_i_loads_builds_and_keeps_its_conventions() -> None:
    held = survey("heldout_i")
    held.check_scenarios("hi_")
    kinds = held.kinds
    held.check_echo_rooms(30, rooms=8, reverberant=5)
    quiet, loud = held.interruptions_within(-7.0, -3.0), held.interruptions_within(1.5, 99.0)
    near, far = held.side_talk_within(-3.0, 3.0), held.side_talk_within(-99.0, -8.0)
    assert quiet >= 12 and loud >= 12 and near >= 12 and far >= 12, (quiet, loud, near, far)
    assert kinds["user_pause"] == 2 and kinds["request"] == 10, kinds
    assert kinds["true_interruption"] >= 24 and kinds["correction"] >= 12, kinds
    assert sum(kinds[k] for k in INTERRUPTIONS) >= 36, kinds
    assert sum(kinds[k] for k in NON_INTERRUPTIONS) >= 80, kinds
    assert kinds["backchannel"] >= 36 and kinds["side_talk"] >= 24, kinds
    assert kinds["noise"] >= 12 and kinds["echo"] >= 8, kinds
