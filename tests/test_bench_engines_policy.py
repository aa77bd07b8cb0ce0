"""`bargein bench engines --policy PRESET[,PRESET...]`: the end_of_turn sessions run with each
preset applied as the runtime applies it (`Preset.apply`: policy, VAD and session fields), so
the STT batch the session feeds the recognizer is the preset's, not the session default's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from bargein.benchmarks import engines, engines_turn
from bargein.engines.base import Engines
from bargein.presets import preset
from bargein.session_config import SessionConfig
from bargein.testing.scripted import RecordingStt, ScriptedPlanner, ScriptedTts

REPO = Path(__file__).resolve().parents[1]
FILE = "pocketsphinx_goforward.raw"


def fed_batches(config: SessionConfig, audio_dir: Path) -> tuple[set[int], dict[str, Any]]:
    """The feed sizes (samples) between an utterance's first and last feed, as the benchmark's
    session fed its recognizer, and the benchmark's row."""
    stt = RecordingStt()
    row = engines_turn.sessions(
        Engines(stt, ScriptedPlanner(["Fine."]), ScriptedTts()), audio_dir, [FILE], config
    )
    assert stt.fed and row["turns"] == 1, row
    return {len(p) for utterance in stt.fed for p in utterance[1:-1]}, row


@pytest.mark.parametrize("name", ["duck_classify", "smart_turn"])
def test_a_preset_row_runs_the_presets_session_fields(name: str, audio_dir: Path) -> None:
    config = engines_turn.preset_config(name)
    applied = preset(name).apply(SessionConfig())
    assert config.stt_batch_ms == applied.stt_batch_ms == 40
    assert config.policy == applied.policy and config.policy.overlap_action == "duck"
    assert config.vad.end_of_turn == applied.vad.end_of_turn
    assert config.vad.turn_charge_ms is None  # measured, not the fixed charge
    sizes, row = fed_batches(config, audio_dir)
    assert sizes == {16 * 40}  # what the session handed the recognizer: 40 ms batches
    assert row["session"]["stt_batch_ms"] == 40 and row["session"]["preset"] == name
    assert row["session"]["overlap_action"] == "duck"


def test_the_default_rows_keep_the_session_defaults(audio_dir: Path) -> None:
    rows = engines_turn.baseline_configs()
    assert set(rows) == {"silence", "smart_turn"}
    assert rows["smart_turn"].vad.end_of_turn == "smart_turn"
    for config in rows.values():
        assert config.policy == SessionConfig().policy and config.preset is None
    sizes, row = fed_batches(rows["silence"], audio_dir)
    assert sizes == {16 * 100} and row["session"]["stt_batch_ms"] == 100


def test_the_option_reaches_the_end_of_turn_sessions(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[Any] = []
    monkeypatch.setattr(
        engines_turn, "bench_end_of_turn", lambda *a: seen.append(a[3]) or {"light": {}}
    )
    args = ["--only-end-of-turn", "--engines", "light", "--json"]
    assert engines.main([*args, "--policy", "smart_turn,duck_classify"]) == 0
    assert engines.main(args) == 0
    assert seen == [["smart_turn", "duck_classify"], []]
    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        engines.main([*args, "--policy", "smart_turn,nonesuch"])
    assert exc.value.code == 2 and "unknown policy preset 'nonesuch'" in capsys.readouterr().err

    configs: list[SessionConfig] = []
    monkeypatch.setattr(engines_turn, "sessions", lambda e, d, f, c: configs.append(c) or {})
    out = engines_turn.family_sessions(None, Path("."), [], ["smart_turn"])
    assert set(out) == {"silence", "smart_turn", "preset"} and set(out["preset"]) == {"smart_turn"}
    assert configs[-1] == engines_turn.preset_config("smart_turn")


def test_the_docs_carry_the_options_help() -> None:
    """docs/engines.md quotes `--policy`'s help word for word (whitespace aside)."""
    [action] = [a for a in engines.build_parser()._actions if "--policy" in a.option_strings]
    assert action.help is not None and action.metavar == "PRESET[,PRESET...]"
    doc = re.sub(r"\s+", " ", (REPO / "docs/engines.md").read_text(encoding="utf-8"))
    assert f"`--policy PRESET[,PRESET...]`: {action.help}" in doc
