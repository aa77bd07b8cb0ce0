"""`--policy NAME` of `bargein run` and `bargein demo`: any preset of the catalogue, listed with
what it does in `--help`; an unknown name is a usage error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import bargein.run_file as run_file
from bargein.presets import DEFAULT_PRESET, PRESETS, preset
from bargein.session import SessionConfig
from bargein.transports import demo
from bargein.wavio import write_wav


@pytest.mark.parametrize("command", ["run", "demo"])
def test_help_lists_every_preset_with_its_description(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = run_file.build_parser() if command == "run" else demo.build_parser()
    text = parser.format_help()
    for name, p in PRESETS.items():
        assert any(
            line.split()[:1] == [name] and p.description in line for line in text.splitlines()
        ), (command, name)
    assert f"default {DEFAULT_PRESET}" in " ".join(text.split())
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--policy", "no_such_preset", *(["x.wav"] if command == "run" else [])])
    assert exited.value.code == 2
    assert "invalid choice: 'no_such_preset'" in capsys.readouterr().err


def test_run_policy_applies_the_preset_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    wav = tmp_path / "quiet.wav"
    write_wav(wav, np.zeros(16000, dtype=np.int16), 16000)
    trace = tmp_path / "trace.jsonl"
    seen: list[SessionConfig] = []
    real = run_file.converse

    async def spy(pcm: Any, rate: int, engines: Any, config: SessionConfig, **kw: Any) -> Any:
        seen.append(config)
        return await real(pcm, rate, engines, config, **kw)

    monkeypatch.setattr(run_file, "converse", spy)
    argv = [str(wav), "--policy", "patient_endpoint", "--min-speech-ms", "250"]
    code = run_file.main([*argv, "--json", "--trace", str(trace)])
    out = capsys.readouterr()
    assert code == 0, out.err
    result = json.loads(out.out)
    assert result["policy"] == {
        "preset": "patient_endpoint",
        "mode": "confirm",
        "min_speech_ms": 250,
    }
    (config,) = seen
    want = preset("patient_endpoint").apply(SessionConfig())
    assert config.vad == want.vad and config.vad.stop_ms == 900
    assert config.policy.min_words == want.policy.min_words and config.policy.min_speech_ms == 250
    first = json.loads(trace.read_text().splitlines()[0])
    assert first["type"] == "session_started" and first["preset"] == "patient_endpoint"


def test_run_without_policy_uses_the_default_preset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wav = tmp_path / "quiet.wav"
    write_wav(wav, np.zeros(8000, dtype=np.int16), 16000)
    assert run_file.main([str(wav), "--json"]) == 0
    policy = json.loads(capsys.readouterr().out)["policy"]
    default = preset(DEFAULT_PRESET).interruption_policy()
    assert policy == {
        "preset": DEFAULT_PRESET,
        "mode": default.mode,
        "min_speech_ms": default.min_speech_ms,
    }


def test_demo_policy_becomes_the_server_default(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[dict[str, Any]] = []

    def fake_server(*args: Any, **kwargs: Any) -> object:
        made.append(kwargs)
        return object()

    monkeypatch.setattr(demo, "DemoServer", fake_server)
    demo.server_from_args(demo.build_parser().parse_args(["--policy", "echo_guard"]))
    demo.server_from_args(demo.build_parser().parse_args([]))
    assert [m["policy"] for m in made] == ["echo_guard", DEFAULT_PRESET]
