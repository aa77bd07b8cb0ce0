"""`bargein research check`: a scenario validated and its truths shown without running any
policy; build-time errors that name the scenario, the item and the key; the help text and the
list agreeing with the registered sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bargein.research.cli import EPILOG, _list_set, _parser, main
from bargein.research.experiment import HELDOUT_SETS, SCENARIO_DIR
from bargein.research.policies import policy_from_table, resolve_policy

GO = '[[audio]]\nlabel = "ask"\nkind = "request"\nfile = "pocketsphinx_goforward.raw"\nat_s = 0.0\n'


def _check(tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    path = tmp_path / "s.toml"
    path.write_text(text)
    rc = main(["check", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_check_prints_every_item_truth_source_and_level(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["check", str(SCENARIO_DIR / "backchannel_then_interrupt.toml")])
    out = capsys.readouterr().out
    assert rc == 0
    assert "backchannel_then_interrupt: ok" in out
    for label, source in (("ask", "energy"), ("mm_hmm", "labels:pyannote_ami_mixture.rttm")):
        line = next(x for x in out.splitlines() if x.split()[:1] == [label])
        assert source in line and "dB" in line
    # the request is the level reference; the words the scripted recogniser will hear
    assert "tell me a story" in out and "+0.0 dB" in out


def test_levels_are_relative_to_the_users_first_turn_even_a_pause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a scenario whose user opens with a pause-broken turn and has no request at all
    text = GO.replace('kind = "request"', 'kind = "user_pause"') + (
        '[[audio]]\nlabel = "soft"\nkind = "backchannel"\nfile = "pocketsphinx_goforward.raw"\n'
        "at_s = 4.0\ngain = 0.5\n"
    )
    rc, out = _check(tmp_path, text, capsys)
    assert rc == 0, out
    lines = {x.split()[0]: x for x in out.splitlines()[1:] if x.startswith("  ") and x.split()}
    assert "(+0.0 dB)" in lines["ask"]
    # gain 0.5 is -6.0 dB; the p90 over other frame boundaries moves it a little
    soft = re.search(r"\(([-+]\d+\.\d) dB\)", lines["soft"])
    assert soft and -6.5 <= float(soft.group(1)) <= -5.5, lines["soft"]


def test_check_warns_of_what_the_scenarios_level_or_gain_clips(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loud = GO.replace("at_s = 0.0\n", "at_s = 0.0\ngain = 1.0\n") + (
        '[[audio]]\nlabel = "bang"\nkind = "noise"\nsource = "noise"\nshape = "cough"\nat_s = 4.0\n'
        "level_dbfs = -6.0\n"
    )
    rc, out = _check(tmp_path, loud, capsys)
    assert rc == 0
    assert re.search(r"'bang': \d+ samples at full scale \(clipped: lower its level_dbfs\)", out)
    assert "'ask'" not in out.split("warning:", 1)[-1]  # a recording's own peaks are not warned
    rc, out = _check(tmp_path, GO.replace("at_s = 0.0\n", "at_s = 0.0\ngain = 8.0\n"), capsys)
    assert "'ask': " in out and "lower its gain" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("speech = [[0.5, 30.0]]\n", r"'ask'.*speech ends at 30.0 s, after the clip's end \(2\.79"),
        ("trim_end_s = 50.0\n", r"'ask'.*trim_end_s 50.0 is beyond the end of pocketsphinx"),
        ("seed = 1.5\n", r"'ask'.*seed must be an integer, got 1.5"),
        ('words_json = "nope.json"\n', r"'ask'.*words_json file 'nope.json' not found"),
        ('file = "nope.wav"\n', r"s\.toml: \[\[audio\]\] 'ask': audio file 'nope.wav' not found"),
    ],
)
def test_build_errors_name_the_scenario_item_and_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: str, message: str
) -> None:
    text = GO.replace('file = "pocketsphinx_goforward.raw"\n', "") if "file =" in extra else GO
    rc, out = _check(tmp_path, text + extra, capsys)
    assert rc == 2 and "Traceback" not in out
    assert out.startswith("bargein research: error: ") and str(tmp_path / "s.toml") in out
    assert re.search(message, out), out


def test_a_top_level_echo_key_says_what_an_echo_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc, out = _check(tmp_path, "echo = true\n" + GO, capsys)
    assert rc == 2 and "unknown keys ['echo']" in out and 'kind = "echo"' in out


def test_check_warns_of_a_label_span_that_starts_in_silence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The RTTM gives AMI B 7.43-29.79 s as one turn; she is silent 19.2-20.1 s, so a clip cut
    # at 19.3 s gets a truth onset 0.8 s before her first sound.
    room = (
        '[[audio]]\nlabel = "room"\nkind = "side_talk"\nfile = "pyannote_ami_mixture.wav"\n'
        "trim_start_s = 19.3\ntrim_end_s = 22.1\nat_s = 5.0\n"
        'rttm = "pyannote_ami_mixture.rttm"\nrttm_speaker = "FEE013"\n'
    )
    rc, out = _check(tmp_path, GO + room, capsys)
    assert rc == 0
    warning = next(x for x in out.splitlines() if "warning" in x and "'room'" in x)
    assert "before any sound" in warning and "speech" in warning
    assert "'ask'" not in "".join(x for x in out.splitlines() if "warning" in x)


def test_help_names_every_registered_set_and_every_policy_form() -> None:
    for name in HELDOUT_SETS:
        assert f"'{name}'" in EPILOG
    sub = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    assert {"run", "compare", "list", "check"} <= set(sub)
    policies = next(a for a in sub["compare"]._actions if a.dest == "policies")
    assert "module:Class" in (policies.help or "")
    assert sub["list"].description and "held-out" in sub["list"].description


def test_list_keeps_its_columns_for_long_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    long = tmp_path / "a_scenario_name_longer_than_the_column.toml"
    long.write_text(GO)
    _list_set("t", [SCENARIO_DIR / "side_talk.toml", long])
    rows = [x for x in capsys.readouterr().out.splitlines() if " [scripted] " in x]
    assert len(rows) == 2 and len({x.index(" [scripted] ") for x in rows}) == 1


def test_a_judge_path_may_start_with_a_tilde(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # docs/research.md's `--policies confirm_words,~/lab/patient.py:Patient`: after the comma
    # the shell leaves `~` alone, so the harness expands it.
    (tmp_path / "lab").mkdir()
    (tmp_path / "lab" / "patient.py").write_text(
        "class Patient:\n"
        "    def judge(self, view):\n        return 'pause'\n"
        "    def deadline(self, view):\n        return None\n"
    )
    (tmp_path / "lab" / "p.toml").write_text('[policy]\npreset = "onset"\n')
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_policy("~/lab/patient.py:Patient").name == "Patient"
    assert resolve_policy("~/lab/p.toml").policy.mode == "onset"


def test_bad_engine_options_and_unknown_scenarios_say_why(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        main(["run", "side_talk", "--engine-options", "{bad", "--out", "x"])
    assert "not valid JSON" in capsys.readouterr().err  # ("[1]": test_research_real_engines)
    assert main(["check", "no_such_scenario"]) == 2
    err = capsys.readouterr().err
    assert "no_such_scenario: no such scenario" in err and "heldout_e" in err


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"min_words": "two"}, "policy field min_words must be an integer, got 'two'"),
        ({"min_words": True}, "policy field min_words must be an integer, got True"),
        ({"vad": {"aggressiveness": 1.5}}, "vad field aggressiveness must be an integer"),
        ({"vad": {"stop_ms": "x"}}, "vad field stop_ms must be an integer, got 'x'"),
        ({"vad": {"start_ratio": "a"}}, "vad field start_ratio must be a number, got 'a'"),
        ({"session": {"echo_cancel": "yes"}}, "session field echo_cancel must be true or false"),
    ],
)
def test_policy_values_of_the_wrong_type_name_their_field(
    table: dict[str, object], message: str
) -> None:
    # Before, min_words = "two" and vad aggressiveness = 1.5 ran (garbage figures) and
    # stop_ms = "x" said only "'<=' not supported between instances of 'str' and 'int'".
    with pytest.raises(ValueError, match=re.escape(message)):
        policy_from_table(table)


def test_policy_numbers_of_either_kind_are_accepted() -> None:
    spec = policy_from_table({"duck_db": -6, "vad": {"stop_ms": 600, "start_ratio": 1}})
    assert (spec.policy.duck_db, spec.vad.stop_ms, spec.vad.start_ratio) == (-6.0, 600, 1.0)
    assert isinstance(spec.policy.duck_db, float) and isinstance(spec.vad.start_ratio, float)
