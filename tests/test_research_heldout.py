"""The held-out scenario sets load, build their audio and truth, and resolve by name."""

from __future__ import annotations

from collections import Counter

import pytest

from bargein.research.audio import build_input
from bargein.research.experiment import HELDOUT_SETS, resolve_scenarios, starter_scenarios
from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS, ScenarioError


@pytest.mark.parametrize("name", sorted(HELDOUT_SETS))
def test_heldout_set_builds_with_every_kind(name: str) -> None:
    scenarios = resolve_scenarios([name])
    assert len(scenarios) == len(list(HELDOUT_SETS[name].glob("*.toml"))) >= 4
    kinds: Counter[str] = Counter()
    for scn in scenarios:
        _, truths = build_input(scn)
        kinds.update(t.kind for t in truths)
        for t in truths:
            # labelled words fall inside the item's speech (the aligned JSONs beside the set; a
            # word may have no length: the shared LibriSpeech labels give "are" 3.65-3.65 s)
            assert all(t.onset - 1e-6 <= a <= b <= t.offset + 1e-6 for a, b, _ in t.words), t
    assert {"backchannel", "noise", "side_talk", "true_interruption"} <= set(kinds)
    assert sum(kinds[k] for k in INTERRUPTIONS) >= 3
    assert sum(kinds[k] for k in NON_INTERRUPTIONS) >= 12


def test_heldout_names_differ_from_the_starter_set() -> None:
    starter = {p.stem for p in starter_scenarios()}
    held = [s.name for name in HELDOUT_SETS for s in resolve_scenarios([name])]
    assert len(set(held)) == len(held) and not starter & set(held)
    with pytest.raises(ScenarioError, match="no such scenario"):
        resolve_scenarios(["heldout_z"])
