"""`heldout_e`, the fifth held-out set (written from the docs alone, frozen unrun), loads,
builds, and holds what it was written to hold: the user interrupts in the request's own voice,
two or more interruptions 4-8 dB below the request, two or more side-talk items near the user's
level, echo windows. No policy runs here: the set stays unseen until its one scored run."""

from __future__ import annotations

from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.testing.heldout_survey import survey


def test_heldout_e_loads_builds_and_keeps_its_conventions() -> None:
    held = survey("heldout_e")
    assert len(held.scenarios) >= 8
    for truths in held.truths.values():
        assert all(t.expect in ("speaking", "thinking") for t in truths if t.kind != "request")
    quiet, near = held.interruptions_within(-8.0, -4.0), held.side_talk_within(-3.0, 3.0)
    assert quiet >= 2 and near >= 2, (quiet, near)
    assert {"backchannel", "noise", "side_talk", "echo", "true_interruption", "correction"} <= set(
        held.kinds
    )
    assert sum(held.kinds[k] for k in INTERRUPTIONS) >= 12
    assert sum(held.kinds[k] for k in NON_INTERRUPTIONS) >= 25
