"""The starter scenarios with real recognizers (`--engines embedded|neural`): transcripts
dropped, the request spoken at the request recording's level and heard by pocketsphinx."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from bargein.research.audio import item_pcm
from bargein.research.cli import main
from bargein.research.experiment import SCENARIO_DIR
from bargein.research.real_engines import p90_dbfs, with_engines
from bargein.research.scenario import ScenarioError, load_scenario, parse_scenario


def test_real_engines_drop_transcripts_and_speak_the_request_at_its_level(tmp_path: Path) -> None:
    scripted = load_scenario(SCENARIO_DIR / "interrupt_yeah_but.toml")
    assert with_engines(scripted, "scripted") is scripted
    real = with_engines(scripted, "embedded", cache_dir=tmp_path)
    assert real.engines.kind == "embedded" and real.name == scripted.name
    assert all(it.transcripts is None for it in real.items)
    ask, ask_real = scripted.items[0], real.items[0]
    assert ask.kind == "request" and ask.transcripts == ("tell me a story",)
    assert ask_real.file is not None and Path(ask_real.file).parent == tmp_path
    assert ask_real.speech is None and ask_real.trim_end_s is None
    level = p90_dbfs(item_pcm(ask, scripted.base_dir))
    assert abs(p90_dbfs(item_pcm(ask_real, real.base_dir)) - level) < 0.5
    # the interruption keeps its recording, trim and labelled speech: only its words go
    assert real.items[1] == dataclasses.replace(scripted.items[1], transcripts=None)
    with pytest.raises(ValueError, match="engines must be"):
        with_engines(scripted, "cloud")


def test_neural_is_an_engine_kind_that_hears_the_audio_itself() -> None:
    item = {"label": "a", "kind": "request", "file": "pocketsphinx_goforward.raw", "at_s": 0.0}
    scn = parse_scenario({"engines": {"kind": "neural"}, "audio": [item]}, name="n")
    assert scn.engines.kind == "neural"
    with pytest.raises(ScenarioError, match="recognises the audio itself"):
        parse_scenario({"engines": {"kind": "neural"},
                        "audio": [{**item, "transcript": "go"}]}, name="n")  # fmt: skip


def test_compare_with_embedded_engines_runs_real_pocketsphinx(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    # pocketsphinx's default beam given explicitly: the same decoding in a pool of its own
    # (tests/test_engine_pool.py reads the default pool's counters)
    code = main(["compare", "interrupt_wait", "--engines", "embedded",
                 "--engine-options", '{"options": {"beam": 1e-48}}',
                 "--policies", "duck_classify", "--out", str(out)])  # fmt: skip
    assert code == 0
    report = json.loads((out / "duck_classify" / "interrupt_wait" / "report.json").read_text())
    assert report["engines"] == "embedded"
    # pocketsphinx heard the spoken request, so the local planner told its story
    assert report["history"][0] == {"role": "user", "content": "tell me a story"}
    assert report["history"][1]["content"].startswith("Once upon a time")


def test_unknown_engines_option_is_refused() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["compare", "all", "--engines", "cloud", "--policies", "duck_classify"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engines", "embedded", "--engine-options", '{"bogus": 1}'], "unknown options: bogus"),
        (["--engines", "embedded", "--engine-options", "[1]"], "must be a JSON object"),
        (["--engine-options", "{}"], "need real engines"),
    ],
)
def test_bad_engine_options_are_a_clear_error_before_any_run(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", "interrupt_wait", "--policies", "duck_classify", *args]) == 2
    assert message in capsys.readouterr().err
