"""`heldout_f`, the sixth held-out set (written from the docs alone once `heldout_e` had been
seen, frozen unrun), loads, builds, and holds what it was written to hold: a different recording
as the user in every scenario, the user interrupting in the request's own voice, interruptions
4-8 dB below the request and others louder than it, side talk near the user's level and far
below it, echo windows with different delays and rooms, a user pause. No policy runs here: the
set stays unseen until its one scored run."""

from __future__ import annotations

from collections import Counter

from bargein.research.audio import build_input
from bargein.research.experiment import HELDOUT_SETS, resolve_scenarios
from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.research.voices import voice


def test_heldout_f_loads_builds_and_keeps_its_conventions() -> None:
    scenarios = resolve_scenarios(["heldout_f"])
    assert len(scenarios) == len(list(HELDOUT_SETS["heldout_f"].glob("*.toml"))) >= 8
    kinds: Counter[str] = Counter()
    users: set[tuple[str | None, int | None]] = set()
    seeds: list[int] = []
    echoes: set[tuple[float, float]] = set()
    quiet = loud = near = far = 0
    for scn in scenarios:
        _, truths = build_input(scn)  # every file, trim, label and word time resolves
        kinds.update(t.kind for t in truths)
        overlaps = [t for t in truths if t.kind not in ("request", "user_pause")]
        assert all(t.expect in ("speaking", "thinking") for t in overlaps)
        for t in truths:
            assert all(t.onset - 1e-6 <= a < b <= t.offset + 1e-6 for a, b, _ in t.words), t
        request = scn.user_turn
        assert request is not None, scn.name
        users.add((request.file, request.channel))
        user = voice(request, scn).level_dbfs
        for item in scn.items:
            if item.source in ("noise", "echo"):
                seeds.append(item.seed)
            if item.kind == "echo":
                echoes.add((item.delay_ms, item.room_rt60_ms))
            elif item.kind in INTERRUPTIONS:
                # the interrupter is the user: the request's recording (and channel)
                assert (item.file, item.channel) == (request.file, request.channel), item.label
                rel = voice(item, scn, first_s=0.8).level_dbfs - user
                quiet += -8.0 <= rel <= -4.0
                loud += rel >= 1.5
            elif item.kind == "side_talk":
                assert (item.file, item.channel) != (request.file, request.channel), item.label
                rel = voice(item, scn, first_s=0.8).level_dbfs - user
                near += abs(rel) <= 3.0
                far += rel <= -8.0
            elif item.kind == "backchannel":
                assert (item.file, item.channel) == (request.file, request.channel), item.label
    assert len(users) == len(scenarios), users  # a different user in every scenario
    assert len(seeds) == len(set(seeds)), sorted(seeds)  # every noise and room its own seed
    assert len(echoes) >= 3 and all(rt60 > 0 for _, rt60 in echoes), echoes
    assert quiet >= 4 and loud >= 4 and near >= 4 and far >= 2, (quiet, loud, near, far)
    assert {"backchannel", "noise", "side_talk", "echo", "true_interruption", "correction"} <= set(
        kinds
    )
    assert kinds["user_pause"] >= 1
    assert sum(kinds[k] for k in INTERRUPTIONS) >= 15
    assert sum(kinds[k] for k in NON_INTERRUPTIONS) >= 30
