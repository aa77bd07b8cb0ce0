"""`heldout_h`, the eighth held-out set (written in session 8 from README, the scenario-format
docs and --help alone, as an outside tester would; frozen unrun), loads, builds, and holds what it
was written to hold. Its convention: every backchannel, interruption and correction is in the
user's own recording (the request's or opening pause's file and channel); any other recording is
side talk, whatever it says. A different recording is the user in every scenario; interruptions
3-7 dB below the user's first turn and others louder; side talk near the user's level and far
below; echo windows of several delays and rooms (one with no room); two user pauses opening
their scenarios. No policy runs here: the set stays unseen until its one scored run."""

from __future__ import annotations

from collections import Counter

from bargein.research.audio import build_input
from bargein.research.experiment import HELDOUT_SETS, resolve_scenarios
from bargein.research.scenario import INTERRUPTIONS, NON_INTERRUPTIONS
from bargein.research.voices import voice

RATE = 16000  # build_input's timeline rate


def test_heldout_h_loads_builds_and_keeps_its_conventions() -> None:
    scenarios = resolve_scenarios(["heldout_h"])
    assert len(scenarios) == len(list(HELDOUT_SETS["heldout_h"].glob("hh_*.toml")))
    assert 12 <= len(scenarios) <= 14
    kinds: Counter[str] = Counter()
    users: set[tuple[str | None, int | None]] = set()
    seeds: list[int] = []
    echoes: set[tuple[float, float]] = set()
    quiet = loud = near = far = 0
    for scn in scenarios:
        mic, truths = build_input(scn)  # every file, trim, label and word time resolves
        assert 35.0 <= len(mic) / RATE <= 55.0, scn.name
        kinds.update(t.kind for t in truths)
        for t in truths:
            if t.kind == "user_pause":
                assert t.expect == "any", t
            elif t.kind not in ("request", "echo"):
                assert t.expect == "speaking", t  # every other item is timed over a reply
            assert all(t.onset - 1e-6 <= a <= b <= t.offset + 1e-6 for a, b, _ in t.words), t
        user_turn = scn.user_turn
        assert user_turn is not None and user_turn is scn.items[0], scn.name
        users.add((user_turn.file, user_turn.channel))
        user = voice(user_turn, scn).level_dbfs
        for item in scn.items:
            if item.source in ("noise", "echo"):
                seeds.append(item.seed)
            if item.kind == "echo":
                echoes.add((item.delay_ms, item.room_rt60_ms))
            elif item.kind in INTERRUPTIONS or item.kind in ("backchannel", "user_pause"):
                # the user is the first turn's recording (and channel)
                assert (item.file, item.channel) == (user_turn.file, user_turn.channel), item.label
                if item.kind in INTERRUPTIONS:
                    rel = voice(item, scn, first_s=0.8).level_dbfs - user
                    quiet += -7.0 <= rel <= -3.0
                    loud += rel >= 1.5
            elif item.kind == "side_talk":
                # another recording, whatever it says (the set's labelling convention)
                assert item.file is not None and item.source == "file", item.label
                assert (item.file, item.channel) != (user_turn.file, user_turn.channel), item.label
                rel = voice(item, scn, first_s=0.8).level_dbfs - user
                near += abs(rel) <= 3.0
                far += rel <= -8.0
    assert len(users) == len(scenarios), users  # a different user in every scenario
    assert len(seeds) == len(set(seeds)), sorted(seeds)  # every noise and room its own seed
    assert len(echoes) >= 6 and (40, 0) in echoes, echoes  # one echo with no room
    assert sum(300 <= rt60 <= 900 for _, rt60 in echoes) >= 4, echoes  # reverberant rooms
    assert quiet >= 10 and loud >= 10 and near >= 6 and far >= 6, (quiet, loud, near, far)
    assert kinds["user_pause"] == 2
    assert kinds["true_interruption"] >= 24 and kinds["correction"] >= 10, kinds
    assert sum(kinds[k] for k in INTERRUPTIONS) >= 36, kinds
    assert sum(kinds[k] for k in NON_INTERRUPTIONS) >= 70, kinds
    assert min(kinds[k] for k in ("noise", "side_talk", "echo")) >= 6, kinds
    assert kinds["backchannel"] >= 30, kinds
