"""`heldout_e`, the fifth held-out set (written from the docs alone, frozen unrun), loads,
builds, and holds what it was written to hold: the user interrupts in the request's own voice,
two or more interruptions 4-8 dB below the request, two or more side-talk items near the user's
level, echo windows. No policy runs here: the set stays unseen until its one scored run."""

from __future__ import annotations

from collections import Counter

from bargein.research.audio import build_input
from bargein.research.experiment import HELDOUT_SETS, resolve_scenarios
from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.research.voices import voice


def test_heldout_e_loads_builds_and_keeps_its_conventions() -> None:
    scenarios = resolve_scenarios(["heldout_e"])
    assert len(scenarios) == len(list(HELDOUT_SETS["heldout_e"].glob("*.toml"))) >= 8
    kinds: Counter[str] = Counter()
    quiet = near = 0
    for scn in scenarios:
        _, truths = build_input(scn)  # every file, trim, label and word time resolves
        kinds.update(t.kind for t in truths)
        assert all(t.expect in ("speaking", "thinking") for t in truths if t.kind != "request")
        for t in truths:
            assert all(t.onset - 1e-6 <= a < b <= t.offset + 1e-6 for a, b, _ in t.words), t
        request = next(it for it in scn.items if it.kind == "request")
        user = voice(request, scn).level_dbfs
        for item in scn.items:
            if item.kind in INTERRUPTIONS:
                # the interrupter is the user: the request's recording (and channel)
                assert (item.file, item.channel) == (request.file, request.channel), item.label
                quiet += -8.0 <= voice(item, scn, first_s=0.8).level_dbfs - user <= -4.0
            elif item.kind == "side_talk":
                assert (item.file, item.channel) != (request.file, request.channel), item.label
                near += abs(voice(item, scn, first_s=0.8).level_dbfs - user) <= 3.0
    assert quiet >= 2 and near >= 2, (quiet, near)
    assert {"backchannel", "noise", "side_talk", "echo", "true_interruption", "correction"} <= set(
        kinds
    )
    assert sum(kinds[k] for k in INTERRUPTIONS) >= 12
    assert sum(kinds[k] for k in NON_INTERRUPTIONS) >= 25
