"""Function words from an engine whose partials carry no confidence (pocketsphinx) are murmurs,
not content (`bargein.decide.confidence.weak_masked`): the pure rule on labelled inputs, the
capability as the real engines declare it, and the rule in a real session with pocketsphinx
(the AMI "Mm. Yeah." that cut the browser demo's story off, against a real interruption)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from bargein.actors.overlap_audio import FLOOR_CLASSIFIER
from bargein.decide.backchannel import BackchannelClassifier, Kind, normalize
from bargein.decide.confidence import MURMUR, MurmurConfig, murmur_masked, weak_masked
from bargein.engines.base import Hypothesis, WordConfidence
from bargein.engines.embedded.sphinx_decoders import SPHINX_MEASURE
from bargein.engines.embedded.sphinx_stt import SphinxStt
from bargein.engines.neural.whisper_decode import WHISPER_MEASURE
from bargein.research.audio import find_audio
from bargein.research.cli import main
from bargein.testing.classifier_replay import feed_event as feed_plain
from bargein.wavio import read_wav

# pocketsphinx's default beam given explicitly: the same decoding in a pool of its own
# (tests/test_engine_pool.py reads the default pool's counters)
OPTIONS = {"options": {"beam": 1e-48}}


def sphinx(text: str) -> Hypothesis:
    """A pocketsphinx partial as the engine returns it."""
    return Hypothesis(text, (), SPHINX_MEASURE, scored_partials=False)


# -- the pure rule -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("the the", [MURMUR, MURMUR]),  # AMI "Mm-hmm" (embedded research run)
        ("and then", [MURMUR, MURMUR]),
        ("food but", ["food", MURMUR]),  # AMI C "Mm. Yeah."
        ("he aaron", [MURMUR, "aaron"]),
        ("haven't", [MURMUR]),
        ("eight", ["eight"]),  # "wait": a number is no murmur
        ("mr crow", ["mr", "crow"]),  # a title opens a turn
        ("no i meant", ["no", MURMUR, "meant"]),  # the quiet turn words stay
        ("what", ["what"]),
    ],
)
def test_function_words_of_unscored_partials_are_murmurs(text: str, masked: list[str]) -> None:
    assert weak_masked(normalize(text), sphinx(text), 500.0) == masked


def test_only_unscored_engines_and_up_to_weak_ms() -> None:
    tokens = normalize("and then")
    assert weak_masked(tokens, "and then", 300.0) == tokens  # plain text: scripted engines
    whisper = Hypothesis("and then", (WordConfidence("and", 0.3), WordConfidence("then", 0.3)),
                         WHISPER_MEASURE)  # fmt: skip
    assert weak_masked(tokens, whisper, 300.0) == tokens  # scored partials
    assert weak_masked(tokens, sphinx("and then"), 5000.0) == [MURMUR] * 2  # any length
    short = MurmurConfig(weak_ms=800.0)
    assert weak_masked(tokens, sphinx("and then"), 800.0, short) == [MURMUR] * 2
    assert weak_masked(tokens, sphinx("and then"), 801.0, short) == tokens
    # strip() keeps the capability (the runtime strips every transcript)
    assert weak_masked(tokens, sphinx(" and then ").strip(), 300.0) == [MURMUR] * 2
    with pytest.raises(ValueError, match="weak_ms"):
        MurmurConfig(weak_ms=-1.0)


def test_murmur_masked_applies_both_rules_to_a_scored_final() -> None:
    final = Hypothesis("you cut", (WordConfidence("you", 0.992), WordConfidence("cut", 0.095)),
                       SPHINX_MEASURE, scored_partials=False)  # fmt: skip
    assert murmur_masked(normalize(final), final, 600.0, normalize) == [MURMUR] * 2


def feed_event(clf: BackchannelClassifier, t: float, kind: str, value: object) -> None:
    """The shared replay step, but words go in as the engine gave them (a `Hypothesis`)."""
    if kind in ("partial", "final"):
        assert isinstance(value, str)
        clf.words(t, value, final=kind == "final")
    else:
        feed_plain(clf, t, kind, value)


def _classifier() -> BackchannelClassifier:
    """The floor's classifier (what the runtime decides with), this user's level known (-20
    dBFS): the early 200 ms rule is on."""
    clf = BackchannelClassifier(FLOOR_CLASSIFIER)
    for _ in range(50):
        clf.user.observe(-20.0)
    return clf


def _run(events: list[tuple[float, str, object]]) -> Kind:
    clf = _classifier()
    for t, kind, value in events:
        feed_event(clf, t, kind, value)
    return clf.decision.kind


def _utterance(
    hyps: list[tuple[float, str, bool]], end: float, make: type[str] | None
) -> list[tuple[float, str, object]]:
    """Onset at 0, frames at the user's level until `end`, the hypotheses at their times."""
    events: list[tuple[float, str, object]] = [(0.0, "onset", None)]
    frames = (round(0.02 * i, 2) for i in range(1, round(end / 0.02) + 1))
    times = sorted({*frames, *(t for t, _, _ in hyps)})
    for t in times:
        if t <= end:
            events.append((t, "frame", -20.0))
        for at, text, final in hyps:
            if at == t:
                value = sphinx(text) if make is None else make(text)
                events.append((t, "final" if final else "partial", value))
                if final:
                    return events
        if t == end:
            events.append((t, "end", None))
    return events


# What pocketsphinx gave in the embedded research run (seconds after the VAD onset).
MM_YEAH = [(0.22, "the", False), (0.51, "food", False), (0.61, "the", False),
           (0.71, "food", False), (1.0, "food but", False), (1.22, "food but", True)]  # fmt: skip
MM_HMM = [(0.22, "the the", False), (0.32, "and then", False), (0.86, "and then", True)]
WAIT = [(0.21, "eight", False), (0.31, "eight a", False), (0.63, "eight", True)]
STOP = [(0.16, "it", False), (0.21, "where", False), (0.31, "was", False),
        (0.41, "ellis in", False), (0.51, "was nigh", False), (0.61, "ellison ira", False),
        (0.72, "ellison ira poor", False)]  # fmt: skip


@pytest.mark.parametrize(("hyps", "end"), [(MM_YEAH, 1.2), (MM_HMM, 0.84)])
def test_a_murmur_heard_as_function_words_is_a_backchannel_only_when_partials_are_unscored(
    hyps: list[tuple[float, str, bool]], end: float
) -> None:
    assert _run(_utterance(hyps, end, None)) is Kind.BACKCHANNEL
    # the same words as plain text (an engine whose words are the truth) take the floor
    assert _run(_utterance(hyps, end, str)) is Kind.INTERRUPTION


@pytest.mark.parametrize(("hyps", "end", "by"), [(WAIT, 0.62, 0.21), (STOP, 2.0, 0.61)])
def test_real_interruptions_still_take_the_floor(
    hyps: list[tuple[float, str, bool]], end: float, by: float
) -> None:
    clf = _classifier()
    for t, kind, value in _utterance(hyps, end, None):
        feed_event(clf, t, kind, value)
        if clf.decision.kind is not Kind.UNDECIDED:
            break
    assert clf.decision.kind is Kind.INTERRUPTION
    assert clf.decision.at == pytest.approx(by)


# -- the capability, from the real engines ----------------------------------------------------


def test_pocketsphinx_declares_and_marks_its_unscored_partials() -> None:
    engine = SphinxStt(options=OPTIONS["options"])
    assert engine.partial_confidence is False
    pcm, rate = read_wav(find_audio("pocketsphinx_cards_005.wav", None))
    assert rate == 16000

    async def hear() -> tuple[list[str], str]:
        rec = engine.recognizer()
        partials: list[str] = []
        await rec.start_utterance()
        for at in range(0, len(pcm), 320):
            partial = await rec.feed(pcm[at : at + 320])
            if partial is not None:
                partials.append(partial)
        final = await rec.end_utterance()
        await rec.aclose()
        return partials, final

    partials, final = trio.run(hear)
    assert partials and all(
        isinstance(p, Hypothesis) and not p.scored_partials and p.words == () for p in partials
    )
    assert isinstance(final, Hypothesis) and not final.scored_partials and final.words


def test_whisper_declares_scored_partials_unless_pocketsphinx_makes_them() -> None:
    neural = pytest.importorskip("bargein.engines.neural.whisper_stt")
    assert neural.WhisperStt().partial_confidence is True  # no model loads here
    assert neural.WhisperStt(partials="sphinx").partial_confidence is False


# -- in a real session with the embedded engines ------------------------------------------------

SCENARIO = """
description = "AMI C's 'Mm. Yeah.' over the story, then a real interruption"
[engines]
kind = "scripted"
replies = [
  "Once upon a time there was a small robot. It lived in a quiet town by the sea.",
  "Every morning it walked to the harbour to count the boats. One day a storm came.",
]

[policy]
preset = "duck_classify"

[[audio]]
label = "ask"
kind = "request"
file = "pocketsphinx_goforward.raw"
at_s = 0.0
transcript = "tell me a story"

[[audio]]
label = "mm_yeah"
kind = "backchannel"
file = "pyannote_ami_source2.wav"
trim_start_s = 27.8
trim_end_s = 28.7
rttm = "pyannote_ami_mixture.rttm"
rttm_speaker = "MEE014"
at_s = 5.0
expect = "speaking"
transcript = "mm yeah"

[[audio]]
label = "wait"
kind = "true_interruption"
file = "pocketsphinx_cards_005.wav"
trim_start_s = 0.2
trim_end_s = 0.45
at_s = 8.0
expect = "speaking"
speech = [[0.01, 0.22]]
transcript = "wait"
"""  # fmt: skip


def test_pocketsphinx_hears_mm_yeah_as_words_and_the_reply_goes_on_until_a_real_wait(
    tmp_path: Path,
) -> None:
    scenario = tmp_path / "mm_yeah_then_wait.toml"
    scenario.write_text(SCENARIO)
    out = tmp_path / "run"
    code = main(["compare", str(scenario), "--engines", "embedded",
                 "--engine-options", json.dumps(OPTIONS),
                 "--policies", "duck_classify", "--out", str(out)])  # fmt: skip
    assert code == 0
    run = out / "duck_classify" / "mm_yeah_then_wait"
    items = {it["label"]: it for it in json.loads((run / "report.json").read_text())["items"]}
    heard = [json.loads(line) for line in (run / "trace.jsonl").read_text().splitlines()]
    words = [e["text"] for e in heard if e["type"] == "transcript_partial" and 5.0 < e["t"] < 7.0]
    assert words  # pocketsphinx heard the murmur as words (function words first)
    assert items["mm_yeah"]["cancelled"] is False, words
    assert items["wait"]["cancelled"] is True
    assert not items["wait"]["missed"]
