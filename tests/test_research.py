"""The research harness: determinism, exact metrics, policies changing what they should, and
clear scenario errors. Scenarios run on trio's virtual clock with scripted engines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bargein.presets import PRESETS
from bargein.research.audio import noise_burst
from bargein.research.cli import main
from bargein.research.experiment import SCENARIO_DIR, csv_text, run_one, table
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
            "stt_partials": False,
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
    # Truth (energy rule): request 0.22–1.32 s, interruption 4.22–5.32 s. Model: audio arrives
    # once captured (20 ms chunks); the VAD decides an onset 140 ms after the voice begins
    # (4.20 -> 4.34) and ends an utterance 480 ms after it stops (5.34 -> 5.82); STT final
    # +200, first token +300, first audio +150.
    _, rep = run_one(hand_built(voice_dir), preset("onset"), None)
    stop = {r["label"]: r for r in rep["items"]}["stop"]
    assert (stop["onset"], stop["offset"], stop["truth_source"]) == (4.22, 5.32, "energy")
    assert stop["assistant_at_onset"] == "speaking" and stop["expectation_met"]
    m = rep["metrics"]
    assert m["barge_in_detection_ms"] == {"n": 1, "p50": 120.0, "p90": 120.0, "p99": 120.0}
    assert m["stop_ms"]["p50"] == 130.0  # the frame in flight at 4.34 plays out to 4.35
    assert m["egress_flush_ms"]["p50"] == 0.0  # egress clears at the decision instant
    # 1.34 + 0.48 + 0.2 + 0.3 + 0.15 = 2.47 first audio; against the 1.32 truth offset
    assert m["response_ms"] == {"n": 1, "p50": 1150.0, "p90": 1150.0, "p99": 1150.0}
    assert m["interruption_response_ms"]["p50"] == 1150.0  # 5.32 -> 6.47
    assert m["missed_interruption_rate"] == {"value": 0.0, "n": 0, "of": 1}
    assert m["false_interruption_rate"] == {"value": None, "n": 0, "of": 0}  # none to judge
    assert (m["context_precision"]["value"], m["context_recall"]["value"]) == (1.0, 1.0)
    assert m["committed_unheard_words"] == 0
    cancelled = next(r for r in (rep["history"]) if r["role"] == "assistant")["content"]
    assert cancelled == "One two three four five six"  # exactly what was heard
    assert m["wasted_tokens"] == 14 - 6  # 14 words streamed as 14 tokens, 6 heard
    # synthesized but never heard; TTS refills the turn feed in steps (d146280), so at the
    # cancel 120 ms less is synthesized ahead than when it woke for every frame (2040)
    assert m["wasted_tts_ms"] == 1920
    # confirm: cancel 400 ms of voice after the VAD's decision allows (4.62): 400 after truth.
    _, rep = run_one(hand_built(voice_dir), preset("confirm"), None)
    assert rep["metrics"]["barge_in_detection_ms"]["p50"] == 400.0
    assert rep["metrics"]["stop_ms"]["p50"] == 130.0  # paused at onset: same silence point
    # confirm_words without partials waits for the final: 5.34 + 0.48 + 0.2 = 6.02 s.
    _, rep = run_one(hand_built(voice_dir), preset("confirm_words"), None)
    assert rep["metrics"]["barge_in_detection_ms"]["p50"] == 1800.0


def starter(name: str) -> Scenario:
    return load_scenario(SCENARIO_DIR / f"{name}.toml")


def outcome(name: str, policy: str) -> dict[str, Any]:
    _, rep = run_one(starter(name), preset(policy), None)
    result: dict[str, Any] = rep["metrics"]
    return result


def test_backchannel_stops_onset_policy_but_not_confirm_words(audio_dir: Path) -> None:
    onset = outcome("backchannel_mm_yeah", "onset")
    # each cancels the reply it overlaps, and "mm yeah" / "yeah" are answered: take-overs
    assert onset["false_cancel_rate"] == {"value": 1.0, "n": 2, "of": 2}
    assert onset["tor_backchannel"] == {"value": 1.0, "n": 2, "of": 2}
    confirm = outcome("backchannel_mm_yeah", "confirm_words")
    assert confirm["false_cancel_rate"] == {"value": 0.0, "n": 0, "of": 2}
    assert confirm["false_interruption_rate"]["value"] == 1.0  # it paused ...
    assert confirm["resume_rate"] == {"value": 1.0, "n": 2, "of": 2}  # ... and resumed each time
    assert confirm["outcomes"]["non_interruption"]["resume"] == 2
    assert confirm["tor_backchannel"]["value"] == 0.0
    assert confirm["counts"]["turns_completed"] == 1


def test_a_false_interruption_resumes(audio_dir: Path) -> None:
    m = outcome("cough_noise", "confirm_words")
    assert m["counts"]["false_pauses"] == m["counts"]["false_alarms_resumed"] >= 1
    assert m["false_cancel_rate"]["value"] == 0.0
    assert m["resume_gap_ms"]["p50"] > 0
    assert m["false_stop_ms"]["n"] >= 1  # stop latency for the pauses too
    assert outcome("cough_noise", "onset")["false_cancel_rate"]["value"] > 0


def test_echo_guard_ignores_the_echo(audio_dir: Path) -> None:
    plain = outcome("echo_speakerphone", "confirm_words")
    assert plain["false_interruption_rate"]["value"] == 1.0
    assert plain["false_alarms_per_min"]["n"] >= 1  # every pause the echo caused, counted
    guarded = outcome("echo_speakerphone", "echo_guard")
    assert guarded["false_interruption_rate"] == {"value": 0.0, "n": 0, "of": 1}
    assert guarded["false_alarms_per_min"]["n"] == 0


def test_commit_modes_differ_in_context_fidelity(audio_dir: Path) -> None:
    words = outcome("interrupt_mid_sentence", "confirm_words")
    generated = outcome("interrupt_mid_sentence", "commit_generated")
    sentences = outcome("interrupt_mid_sentence", "commit_sentences")
    assert words["context_precision"]["value"] == 1.0 and words["context_recall"]["value"] == 1.0
    assert words["committed_unheard_words"] == 0
    assert generated["context_precision"]["value"] < 0.5
    assert generated["committed_unheard_words"] > 10
    assert sentences["committed_unheard_words"] == 0
    assert sentences["context_recall"]["value"] < 1.0  # the unfinished sentence is left out


def test_the_starter_set_loads_and_meets_its_expectations(audio_dir: Path) -> None:
    kinds = set()
    for path in sorted(SCENARIO_DIR.glob("*.toml")):
        scn = load_scenario(path)
        kinds |= {it.kind for it in scn.items}
        _, rep = run_one(scn, preset("confirm_words"), None)
        assert rep["metrics"]["expectations_failed"]["n"] == 0, path.name
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
        (
            {
                "audio": [
                    {"label": "a", "kind": "noise", "source": "noise", "at_s": 0, "shape": "hiss"}
                ]
            },
            "shape 'hiss' is not one of ['cough', 'clicks', 'steady']",
        ),
        (
            {
                "audio": [
                    {"label": "a", "kind": "request", "file": "x", "at_s": 0, "shape": "clicks"}
                ]
            },
            "shape only applies to source 'noise'",
        ),
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


@pytest.mark.parametrize("shape", ["cough", "clicks", "steady"])
def test_noise_shapes_have_their_level_and_envelope(shape: str) -> None:
    pcm = noise_burst(1.0, -30.0, seed=3, shape=shape)
    x = pcm.astype(np.float64) / 32768
    assert len(pcm) == 16000
    assert 20 * np.log10(np.sqrt(np.mean(x**2))) == pytest.approx(-30.0, abs=0.05)
    assert np.array_equal(pcm, noise_burst(1.0, -30.0, seed=3, shape=shape))  # seeded
    frames = 10 * np.log10(np.mean(x[: 16000 // 160 * 160].reshape(-1, 160) ** 2, axis=1) + 1e-12)
    quiet = float(np.mean(frames < -60))  # share of 10 ms frames with (almost) nothing
    if shape == "clicks":  # 5 ms clicks every 90-150 ms: mostly gaps
        assert quiet > 0.5
    elif shape == "steady":  # constant between the 20 ms fades
        assert quiet == 0 and np.ptp(frames[3:-3]) < 6  # noise: +-3 dB per 10 ms
    else:  # a decaying burst: its first 100 ms far louder than its last
        assert frames[:10].mean() - frames[-10:].mean() > 20


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
    # the echo canceller (or any field a preset sets) from a policy table, checked at once
    aec = policy_from_table({"preset": "confirm_words", "session": {"echo_cancel": True}})
    assert aec.session == {"echo_cancel": True} and aec.policy.min_words == 1
    assert policy_from_table({"preset": "aec_confirm_words", "min_words": 2}).session == {
        "echo_cancel": True
    }
    with pytest.raises(ValueError, match=r"unknown session fields \['compute'\]"):
        policy_from_table({"session": {"compute": "thread"}})
    with pytest.raises(ValueError, match="echo_cancel must be true or false"):
        policy_from_table({"session": {"echo_cancel": "yes"}})
    # every word-set field takes a TOML list and goes back to JSON as a sorted list
    words = policy_from_table({"interrupt_phrases": ["Wait", "hold on"], "backchannels": ["mm"]})
    assert words.policy.interrupt_phrases == frozenset({"wait", "hold on"})
    listed = json.loads(json.dumps(words.to_json()))["policy"]
    assert (listed["interrupt_phrases"], listed["backchannels"]) == (["hold on", "wait"], ["mm"])
    with pytest.raises(ValueError, match="interrupt_phrases must be a list"):
        policy_from_table({"interrupt_phrases": "wait"})


def test_table_and_csv_print_denominators() -> None:
    def r(n: int, of: int) -> dict[str, Any]:
        return {"value": round(n / of, 4) if of else None, "n": n, "of": of}

    summaries = {
        "onset": {"false_interruption_rate": r(2, 2), "stop_ms": {"n": 3, "p50": 90.0},
                  "expectations_failed": r(1, 7)},
        "confirm": {"false_interruption_rate": r(1, 4), "stop_ms": {"n": 0, "p50": None},
                    "expectations_failed": r(0, 7)},
    }  # fmt: skip
    lines = table(summaries).splitlines()
    assert lines[0].startswith("policy") and "false int. rate" in lines[0]
    assert "expect failed" in lines[0]
    assert lines[2].startswith("onset ") and " 90 (n=3) " in lines[2] and " 1 (2/2) " in lines[2]
    assert " 0.143 (1/7) " in lines[2]
    assert lines[3].startswith("confirm") and " 0.25 (1/4) " in lines[3] and "- (n=0)" in lines[3]
    rows = csv_text(summaries).splitlines()
    head = rows[0].split(",")
    assert head[:4] == ["policy", "tor_interruption", "tor_interruption.n", "tor_interruption.of"]
    onset = dict(zip(head, rows[1].split(","), strict=True))
    assert (onset["stop_ms.p50"], onset["stop_ms.n"]) == ("90.0", "3")
    assert (onset["expectations_failed"], onset["expectations_failed.of"]) == ("0.1429", "7")


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
    items = (out / "items.csv").read_text().splitlines()
    assert len(items) == 1 + 2 * 2  # header + policies x labelled items
    assert items[0].startswith("policy,scenario,label,kind,onset,offset,truth_source")
    assert (out / "compare.png").read_bytes()[:4] == b"\x89PNG"
    md = (out / "compare.md").read_text()
    assert "| policy |" in md and "| onset | " in md
    assert "Non-interruptions by kind:" in md and "side_talk false cancel" in md
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert "backchannel_mm_yeah" in listed and "(2 backchannel, 1 request)" in listed
    assert (
        "in all: 17 interruptions (1 correction, 16 true_interruption); 40 non-interruptions"
        in listed
    )
    width = max(map(len, PRESETS))  # names padded to the longest
    for name, p in PRESETS.items():  # every preset, its description and the fields it sets
        assert f"  {name:<{width}} {p.description}\n" in listed
    assert "vad: stop_ms=900" in listed
    assert main(["run", str(tmp_path / "none.toml"), "--out", str(out)]) == 2
    assert "no such scenario" in capsys.readouterr().err
    assert main(["compare", str(scn), "--policies", "nope"]) == 2
