"""The research harness: determinism, exact metrics, policies changing what they should, and
clear scenario errors. Scenarios run on trio's virtual clock with scripted engines."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bargein.research.audio import Truth
from bargein.research.cli import main
from bargein.research.experiment import SCENARIO_DIR, csv_text, run_one, table
from bargein.research.metrics import compute, percentile
from bargein.research.policies import policy_from_table, preset
from bargein.research.scenario import Scenario, ScenarioError, load_scenario, parse_scenario
from bargein.testing.audio import silence
from bargein.testing.scripted import ScriptedTts
from bargein.wavio import write_wav

REPLY = "One two three four five six seven eight. Nine ten eleven twelve thirteen fourteen."


@pytest.fixture
def voice_dir(tmp_path: Path) -> Path:
    """A clean synthetic voice (the scripted TTS buzz, 1.14 s) with 200 ms of silence around it:
    its on/off edges make the VAD's decisions exact on the virtual clock."""
    pcm, _ = ScriptedTts().render("hello there friend")
    write_wav(tmp_path / "voice.wav", np.concatenate([silence(200), pcm, silence(200)]), 16000)
    return tmp_path


def hand_built(base: Path, **extra: Any) -> Scenario:
    raw: dict[str, Any] = {
        "engines": {
            "kind": "scripted",
            "stt_final_ms": 200,
            "llm_first_token_ms": 300,
            "tokens_per_second": 0,
            "tts_first_audio_ms": 150,
            "replies": [REPLY],
        },
        "audio": [
            {
                "label": "ask",
                "kind": "request",
                "file": "voice.wav",
                "at_s": 0.0,
                "transcript": "hello there",
            },
            {
                "label": "stop",
                "kind": "true_interruption",
                "file": "voice.wav",
                "at_s": 4.0,
                "expect": "speaking",
                "transcript": "stop it now",
            },
        ],
        **extra,
    }
    return parse_scenario(raw, path=base / "hand_built.toml")


def test_same_inputs_give_a_byte_identical_trace(voice_dir: Path, tmp_path: Path) -> None:
    scn = hand_built(voice_dir)
    run_one(scn, preset("confirm"), tmp_path / "a", plot=False)
    run_one(scn, preset("confirm"), tmp_path / "b", plot=False)
    a = (tmp_path / "a/hand_built/trace.jsonl").read_bytes()
    assert a == (tmp_path / "b/hand_built/trace.jsonl").read_bytes()
    assert a.count(b'"type":"barge_in"') == 1
    assert (tmp_path / "a/hand_built/report.json").read_bytes() == (
        tmp_path / "b/hand_built/report.json"
    ).read_bytes()


def test_every_metric_on_a_hand_built_scenario(voice_dir: Path) -> None:
    # Truth (energy): request 0.22–1.32 s, interruption 4.22–5.32 s. Model: the VAD ends an
    # utterance 480 ms after the voice, STT final +200, first token +300, first audio +150.
    _, rep = run_one(hand_built(voice_dir), preset("onset"), None)
    stop = {r["label"]: r for r in rep["items"]}["stop"]
    assert (stop["onset"], stop["offset"]) == (4.22, 5.32)
    assert stop["assistant_at_onset"] == "speaking" and stop["expectation_met"]
    m = rep["metrics"]
    # onset: the decision comes with the VAD's onset window (first voiced frame 4.16 + 160 ms).
    assert m["barge_in_detection_ms"] == {"n": 1, "p50": 100.0, "p90": 100.0, "p99": 100.0}
    assert m["stop_ms"]["p50"] == 110.0  # the frame in flight at the decision plays out
    assert m["egress_flush_ms"]["p50"] == 0.0  # egress clears at the decision instant
    assert m["response_ms"] == {"n": 2, "p50": 1130.0, "p90": 1130.0, "p99": 1130.0}
    assert m["missed_interruption_rate"] == 0.0
    assert m["false_barge_in_rate"] is None  # no non-interruption overlaps here
    assert (m["context_precision"], m["context_recall"], m["committed_unheard_words"]) == (
        1.0,
        1.0,
        0,
    )
    cancelled = next(r for r in (rep["history"]) if r["role"] == "assistant")["content"]
    assert cancelled == "One two three four five six"  # exactly what was heard
    assert m["wasted_tokens"] == 14 - 6  # 14 words streamed as 14 tokens, 6 heard
    assert m["wasted_tts_ms"] == 2040
    # confirm: cancel 400 ms after the VAD's onset (4.20): 380 ms after the truth.
    _, rep = run_one(hand_built(voice_dir), preset("confirm"), None)
    assert rep["metrics"]["barge_in_detection_ms"]["p50"] == 380.0
    assert rep["metrics"]["stop_ms"]["p50"] == 110.0  # paused at onset: same silence point
    # confirm_words without partials waits for the final: 5.32 + 0.48 + 0.2 = 6.00 s.
    _, rep = run_one(hand_built(voice_dir), preset("confirm_words"), None)
    assert rep["metrics"]["barge_in_detection_ms"]["p50"] == 1780.0


def test_metrics_from_an_event_list_exactly() -> None:
    truths = [
        Truth("ask", "request", 0.0, 1.0),
        Truth("mm", "backchannel", 3.0, 3.3, "speaking"),
        Truth("cut", "true_interruption", 5.0, 6.0, "speaking"),
        Truth("miss", "true_interruption", 9.0, 9.5),
    ]
    ev = [
        {"type": "turn_started", "t": 1.5, "turn": 1},
        {"type": "audio_out_first", "t": 2.0, "turn": 1},
        {"type": "output_paused", "t": 3.1, "turn": 1, "onset": 2.98},
        {"type": "output_resumed", "t": 3.9, "turn": 1},
        {"type": "output_paused", "t": 5.1, "turn": 1, "onset": 4.98},
        {"type": "barge_in", "t": 5.4, "turn": 1, "reason": "barge_in", "onset": 4.98},
        {"type": "output_cleared", "t": 5.42, "turn": 1},
        {"type": "turn_cancelled", "t": 5.45, "turn": 1, "heard_text": "a b c",
         "committed_text": "a b c d", "generated_text": "a b c d e f", "tokens": 12,
         "synthesized_ms": 3000.0, "heard_ms": 1000.0},
        {"type": "audio_out_first", "t": 7.0, "turn": 2},
    ]  # fmt: skip
    for i, e in enumerate(ev):
        e["seq"] = i
    samples, rows = compute(ev, truths, [(2.0, 3.1, 1), (3.9, 5.1, 1)])
    m = samples.summary()
    assert m["barge_in_detection_ms"]["p50"] == pytest.approx(400.0)
    assert m["stop_ms"]["p50"] == pytest.approx(100.0)  # heard until 5.1
    assert m["egress_flush_ms"]["p50"] == pytest.approx(20.0)
    assert m["false_barge_in_rate"] == 1.0 and m["false_cancel_rate"] == 0.0
    assert m["missed_interruption_rate"] == 0.5
    assert m["resume_rate"] == 0.5 and m["resume_gap_ms"]["p50"] == pytest.approx(800.0)
    assert m["response_ms"]["n"] == 2
    assert sorted(samples.response_s) == pytest.approx([1.0, 1.0])  # 1.0→2.0, 6.0→7.0
    assert (m["context_precision"], m["context_recall"], m["committed_unheard_words"]) == (
        0.75,
        1.0,
        1,
    )
    assert m["wasted_tokens"] == 6 and m["wasted_tts_ms"] == 2000
    assert [r["assistant_at_onset"] for r in rows] == ["silent", "speaking", "speaking", "silent"]
    assert m["expectations_failed"] == 0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == pytest.approx(3.7)


def starter(name: str) -> Scenario:
    return load_scenario(SCENARIO_DIR / f"{name}.toml")


def outcome(name: str, policy: str) -> dict[str, Any]:
    _, rep = run_one(starter(name), preset(policy), None)
    result: dict[str, Any] = rep["metrics"]
    return result


def test_backchannel_stops_onset_policy_but_not_confirm_words(audio_dir: Path) -> None:
    onset = outcome("backchannel_mm_yeah", "onset")
    assert onset["false_cancel_rate"] == 1.0
    confirm = outcome("backchannel_mm_yeah", "confirm_words")
    assert confirm["false_cancel_rate"] == 0.0
    assert confirm["false_barge_in_rate"] == 1.0  # it paused ...
    assert confirm["resume_rate"] == 1.0  # ... and resumed each time
    assert confirm["counts"]["turns_completed"] == 1


def test_a_false_interruption_resumes(audio_dir: Path) -> None:
    m = outcome("cough_noise", "confirm_words")
    assert m["counts"]["pauses"] == m["counts"]["resumes"] >= 1
    assert m["false_cancel_rate"] == 0.0
    assert m["resume_gap_ms"]["p50"] > 0
    assert outcome("cough_noise", "onset")["false_cancel_rate"] > 0


def test_echo_guard_ignores_the_echo(audio_dir: Path) -> None:
    assert outcome("echo_speakerphone", "confirm_words")["false_barge_in_rate"] == 1.0
    guarded = outcome("echo_speakerphone", "echo_guard")
    assert guarded["false_barge_in_rate"] == 0.0
    assert guarded["counts"].get("pauses", 0) == 0


def test_commit_modes_differ_in_context_fidelity(audio_dir: Path) -> None:
    words = outcome("interrupt_mid_sentence", "confirm_words")
    generated = outcome("interrupt_mid_sentence", "commit_generated")
    sentences = outcome("interrupt_mid_sentence", "commit_sentences")
    assert words["context_precision"] == 1.0 and words["context_recall"] == 1.0
    assert words["committed_unheard_words"] == 0
    assert generated["context_precision"] < 0.5 and generated["committed_unheard_words"] > 10
    assert sentences["committed_unheard_words"] == 0
    assert sentences["context_recall"] < 1.0  # the unfinished sentence is left out


def test_the_starter_set_loads_and_meets_its_expectations(audio_dir: Path) -> None:
    kinds = set()
    for path in sorted(SCENARIO_DIR.glob("*.toml")):
        scn = load_scenario(path)
        kinds |= {it.kind for it in scn.items}
        _, rep = run_one(scn, preset("confirm_words"), None)
        assert rep["metrics"]["expectations_failed"] == 0, path.name
    assert kinds >= {"true_interruption", "correction", "backchannel", "noise", "side_talk",
                     "echo", "user_pause"}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"audio": []}, "needs at least one [[audio]] item"),
        (
            {"audio": [{"label": "a", "kind": "cough", "file": "x.wav", "at_s": 0}]},
            "kind 'cough' is not one of",
        ),
        ({"audio": [{"label": "a", "kind": "request", "at_s": 0}]}, "needs file"),
        (
            {"audio": [{"label": "a", "kind": "request", "file": "x.wav"}]},
            "missing required key 'at_s'",
        ),
        (
            {"audio": [{"label": "a", "kind": "echo", "at_s": 1, "until_s": 2, "delay_ms": 5}]},
            "echo delay_ms must be >= 20",
        ),
        ({"audio": [{"label": "a", "kind": "echo", "source": "echo", "at_s": 1}]}, "needs until_s"),
        ({"audio": [{"label": "a", "kind": "noise", "source": "file", "at_s": 0}]}, "needs file"),
        (
            {"audio": [{"label": "a", "kind": "request", "file": "x", "at_s": 0, "gian": 2}]},
            "unknown keys ['gian']",
        ),
        (
            {"audio": [{"label": "a", "kind": "request", "file": "x", "at_s": "0"}]},
            "at_s must be a number",
        ),
        (
            {
                "audio": [
                    {"label": "a", "kind": "request", "file": "x", "at_s": 0, "channel": "middle"}
                ]
            },
            "channel must be",
        ),
        ({"engines": {"kind": "gpt"}}, "kind 'gpt' is not one of"),
        ({"engines": {"kind": "openai"}}, "needs base_url"),
        ({"engines": {"llm_first_tokn_ms": 3}}, "unknown keys ['llm_first_tokn_ms']"),
        ({"policy": {"mode": "eager"}}, "unknown interruption mode 'eager'"),
        ({"policy": {"min_word": 1}}, "unknown policy fields ['min_word']"),
        ({"policy": {"preset": "fast"}}, "unknown policy preset 'fast'"),
    ],
)
def test_scenario_errors_are_clear(change: dict[str, Any], message: str) -> None:
    raw: dict[str, Any] = {
        "audio": [{"label": "a", "kind": "request", "file": "x.wav", "at_s": 0}],
        **change,
    }
    with pytest.raises(ScenarioError) as err:
        parse_scenario(raw, name="bad")
    assert message in str(err.value)
    assert "bad" in str(err.value)


def test_missing_audio_and_bad_toml_are_clear(tmp_path: Path) -> None:
    (tmp_path / "broken.toml").write_text("name = \n")
    with pytest.raises(ScenarioError, match=r"broken\.toml: not valid TOML"):
        load_scenario(tmp_path / "broken.toml")
    (tmp_path / "nofile.toml").write_text(
        '[[audio]]\nlabel = "a"\nkind = "request"\nfile = "nope.wav"\nat_s = 0\n'
    )
    with pytest.raises(ScenarioError, match=r"audio file .nope\.wav. not found"):
        run_one(load_scenario(tmp_path / "nofile.toml"), preset("onset"), None)


def test_policy_tables_and_presets() -> None:
    spec = policy_from_table({"preset": "confirm", "min_words": 2, "vad": {"stop_ms": 700}})
    assert (spec.policy.mode, spec.policy.min_words, spec.vad.stop_ms) == ("confirm", 2, 700)
    assert preset("onset").policy.mode == "onset"
    with pytest.raises(ValueError, match="unknown vad fields"):
        policy_from_table({"vad": {"stopms": 1}})


def test_table_and_csv() -> None:
    summaries = {
        "onset": {"false_barge_in_rate": 1.0, "barge_in_detection_ms": {"p50": 90.0}},
        "confirm": {"false_barge_in_rate": 0.25, "barge_in_detection_ms": {"p50": None}},
    }
    text = table(summaries)
    lines = text.splitlines()
    assert lines[0].startswith("policy") and "false barge-in" in lines[0]
    assert lines[2].startswith("onset ") and " 90 " in lines[2] and " 1 " in lines[2]
    assert lines[3].startswith("confirm") and " 0.25 " in lines[3]
    rows = csv_text(summaries).splitlines()
    assert rows[0].split(",")[:3] == ["policy", "barge_in_detection_ms.p50",
                                      "barge_in_detection_ms.p90"]  # fmt: skip
    assert rows[1].startswith("onset,90.0,")


def test_cli_run_compare_and_list(
    voice_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scn = voice_dir / "hand_built.toml"
    scn.write_text(
        '[engines]\nreplies = ["' + REPLY + '"]\n'
        '[[audio]]\nlabel = "ask"\nkind = "request"\nfile = "voice.wav"\nat_s = 0\n'
        'transcript = "hi"\n'
        '[[audio]]\nlabel = "stop"\nkind = "true_interruption"\nfile = "voice.wav"\n'
        'at_s = 4.0\ntranscript = "stop it"\n'
    )
    out = tmp_path / "out"
    assert main(["run", str(scn), "--policy", "onset", "--out", str(out)]) == 0
    for name in ("trace.jsonl", "report.json", "timeline.png"):
        assert (out / "hand_built" / name).stat().st_size > 0
    capsys.readouterr()  # drop the run's output: what follows checks the compare table's
    assert main(["compare", str(scn), "--policies", "onset,confirm", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "onset" in printed and "confirm" in printed
    assert (out / "compare.csv").read_text().count("\n") == 3
    assert main(["list"]) == 0
    assert "backchannel_mm_yeah" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "none.toml"), "--out", str(out)]) == 2
    assert "no such scenario" in capsys.readouterr().err
    assert main(["compare", str(scn), "--policies", "nope"]) == 2
