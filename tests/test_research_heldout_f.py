"""`heldout_f`, the sixth held-out set (written from the docs alone once `heldout_e` had been
seen, frozen unrun), loads, builds, and holds what it was written to hold: a different recording
as the user in every scenario, the user interrupting in the request's own voice, interruptions
4-8 dB below the request and others louder than it, side talk near the user's level and far
below it, echo windows with different delays and rooms, a user pause. No policy runs here: the
set stays unseen until its one scored run."""

from __future__ import annotations

from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.testing.heldout_survey import survey


def test_heldout_f_loads_builds_and_keeps_its_conventions() -> None:
    held = survey("heldout_f")
    assert len(held.scenarios) >= 8
    for truths in held.truths.values():
        overlaps = [t for t in truths if t.kind not in ("request", "user_pause")]
        assert all(t.expect in ("speaking", "thinking") for t in overlaps)
    kinds = held.kinds
    assert len(held.users) == len(held.scenarios), held.users  # a different user in each
    assert len(held.seeds) == len(set(held.seeds)), sorted(held.seeds)  # each its own seed
    assert len(held.echoes) >= 3 and all(rt60 > 0 for _, rt60 in held.echoes), held.echoes
    quiet, loud = held.interruptions_within(-8.0, -4.0), held.interruptions_within(1.5, 99.0)
    near, far = held.side_talk_within(-3.0, 3.0), held.side_talk_within(-99.0, -8.0)
    assert quiet >= 4 and loud >= 4 and near >= 4 and far >= 2, (quiet, loud, near, far)
    assert {"backchannel", "noise", "side_talk", "echo", "true_interruption", "correction"} <= set(
        kinds
    )
    assert kinds["user_pause"] >= 1
    assert sum(kinds[k] for k in INTERRUPTIONS) >= 15
    assert sum(kinds[k] for k in NON_INTERRUPTIONS) >= 30
