"""`heldout_g`, the seventh held-out set (written from README, the scenario-format docs and
--help alone, as an outside tester would; frozen unrun), loads, builds, and holds what it was
written to hold: a different recording as the user in every scenario, the user's backchannels,
interruptions and corrections all in the request's own voice (anything said in another recording
is side talk, whatever its words), interruptions 4-8 dB below the request and others louder,
side talk near the user's level and far below it, reverberant echo rooms of different delays,
two user pauses (one opening a scenario, one later while the assistant is silent). No policy
runs here: the set stays unseen until its one scored run."""

from __future__ import annotations

from collections import Counter

from bargein.research.audio import build_input
from bargein.research.experiment import HELDOUT_SETS, resolve_scenarios
from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.research.voices import voice

RATE = 16000  # build_input's timeline rate


def test_heldout_g_loads_builds_and_keeps_its_conventions() -> None:
    scenarios = resolve_scenarios(["heldout_g"])
    assert len(scenarios) == len(list(HELDOUT_SETS["heldout_g"].glob("*.toml"))) >= 9
    kinds: Counter[str] = Counter()
    users: set[tuple[str | None, int | None]] = set()
    seeds: list[int] = []
    echoes: set[tuple[float, float]] = set()
    quiet = loud = near = far = silent_pauses = 0
    for scn in scenarios:
        mic, truths = build_input(scn)  # every file, trim, label and word time resolves
        assert len(mic) / RATE < 60.0, scn.name  # runs stay quick
        kinds.update(t.kind for t in truths)
        for t in truths:
            if t.kind == "user_pause":
                assert t.expect in ("any", "silent"), t
                silent_pauses += t.expect == "silent"
            elif t.kind not in ("request", "echo"):
                assert t.expect == "speaking", t  # every other item is timed over a reply
            # a <= b: LibriSpeech 1272's own labels give "are" no length (3.65-3.65 s)
            assert all(t.onset - 1e-6 <= a <= b <= t.offset + 1e-6 for a, b, _ in t.words), t
        request = scn.user_turn
        assert request is not None, scn.name
        users.add((request.file, request.channel))
        user = voice(request, scn).level_dbfs
        for item in scn.items:
            if item.source in ("noise", "echo"):
                seeds.append(item.seed)
            if item.kind == "echo":
                echoes.add((item.delay_ms, item.room_rt60_ms))
            elif item.kind in INTERRUPTIONS or item.kind in ("backchannel", "user_pause"):
                # the user is the request's recording (and channel)
                assert (item.file, item.channel) == (request.file, request.channel), item.label
                if item.kind in INTERRUPTIONS:
                    rel = voice(item, scn, first_s=0.8).level_dbfs - user
                    quiet += -8.0 <= rel <= -4.0
                    loud += rel >= 1.5
            elif item.kind == "side_talk":
                # another recording, whatever it says (the set's labelling convention)
                assert (item.file, item.channel) != (request.file, request.channel), item.label
                rel = voice(item, scn, first_s=0.8).level_dbfs - user
                near += abs(rel) <= 3.0
                far += rel <= -8.0
    assert len(users) == len(scenarios), users  # a different user in every scenario
    assert len(seeds) == len(set(seeds)), sorted(seeds)  # every noise and room its own seed
    assert len(echoes) >= 5 and all(rt60 > 0 for _, rt60 in echoes), echoes
    assert sum(300 <= rt60 <= 700 for _, rt60 in echoes) >= 4, echoes  # reverberant rooms
    assert quiet >= 8 and loud >= 8 and near >= 6 and far >= 5, (quiet, loud, near, far)
    assert {"backchannel", "noise", "side_talk", "echo", "true_interruption", "correction"} <= set(
        kinds
    )
    assert kinds["user_pause"] >= 2 and silent_pauses >= 1
    assert kinds["correction"] >= 5
    assert 18 <= sum(kinds[k] for k in INTERRUPTIONS) <= 22, kinds
    assert 45 <= sum(kinds[k] for k in NON_INTERRUPTIONS) <= 55, kinds
