"""Word confidence: what the real recognizers report (pocketsphinx's lattice posterior on its
final, Whisper's hypothesis confidence), how it travels (a `Hypothesis` is a `str`), and the
pure murmur rule the classifier applies to a short overlap (bargein.decide.confidence)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import trio

from bargein.actors.stt import _Utterances
from bargein.decide.backchannel import BackchannelClassifier, Kind, UserLevel, normalize
from bargein.decide.confidence import MURMUR, MurmurConfig, murmur_masked
from bargein.engines.base import Hypothesis, WordConfidence, word_confidences
from bargein.engines.embedded.sphinx_decoders import SPHINX_MEASURE
from bargein.engines.neural import missing_packages
from bargein.engines.neural.whisper_decode import WHISPER_MEASURE
from bargein.runtime.bus import EventBus
from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import Int16Array, Transcript
from bargein.testing.audio import load

BATCH = 1600  # the stt actor's 100 ms
# pocketsphinx's own default beam, given explicitly: the same decoding, but a pool of its own,
# so these tests leave no decoder in the default configuration's process-wide pool (whose
# counters tests/test_engine_pool.py reads)
OWN_POOL = {"beam": 1e-48}


def sphinx(text: str, *conf: float) -> Hypothesis:
    words = tuple(WordConfidence(w, c) for w, c in zip(text.split(), conf, strict=True))
    return Hypothesis(text, words, SPHINX_MEASURE)


async def recognize(rec: object, pcm: Int16Array) -> tuple[list[str], str]:
    partials: list[str] = []
    await rec.start_utterance()  # type: ignore[attr-defined]
    for at in range(0, len(pcm), BATCH):
        text = await rec.feed(pcm[at : at + BATCH])  # type: ignore[attr-defined]
        if text:
            partials.append(text)
    final = await rec.end_utterance()  # type: ignore[attr-defined]
    await rec.aclose()  # type: ignore[attr-defined]
    return partials, final


# -- the Hypothesis type -------------------------------------------------------------------


def test_hypothesis_is_text_and_keeps_its_confidences_through_strip_and_pickle() -> None:
    h = Hypothesis(" go forward ", (WordConfidence("go", 0.9), WordConfidence("forward", 0.4)),
                   SPHINX_MEASURE)  # fmt: skip
    assert h == " go forward " and isinstance(h, str)
    stripped = h.strip()
    assert stripped == "go forward"
    assert word_confidences(stripped) == h.words and stripped.measure == SPHINX_MEASURE
    back = pickle.loads(pickle.dumps(stripped))  # worker processes return finals by pickle
    assert back == "go forward" and back.words == h.words and back.measure == SPHINX_MEASURE
    assert word_confidences("go forward") is None  # plain text: no confidence known
    assert word_confidences(h.upper()) is None  # other str operations give plain text


# -- real recognizers on a real recording --------------------------------------------------


def test_pocketsphinx_final_carries_lattice_posteriors_and_its_partials_none() -> None:
    from bargein.engines.embedded import SphinxStt

    pcm = load("pocketsphinx_goforward.raw")
    partials, final = trio.run(recognize, SphinxStt(options=OWN_POOL).recognizer(), pcm)
    assert partials and all(word_confidences(p) is None for p in partials)
    assert isinstance(final, Hypothesis) and final.measure == SPHINX_MEASURE
    assert [w.text for w in final.words] == final.split()
    assert all(0.0 <= w.confidence <= 1.0 for w in final.words)
    # "go forward ten meters" is heard as "go forward ten years": the wrong last word is the
    # least sure one (measured 0.88 against 0.96-1.0).
    assert final == "go forward ten years"
    conf = [w.confidence for w in final.words]
    assert conf[-1] < min(conf[:-1]) and conf[0] > 0.99


def test_pocketsphinx_keyword_mode_final_stays_plain_text() -> None:
    from bargein.engines.embedded import SphinxStt

    pcm = load("pocketsphinx_goforward.raw")
    stt = SphinxStt(keyphrases=["go forward"], options=OWN_POOL)
    _, final = trio.run(recognize, stt.recognizer(), pcm)
    assert final == "go forward" and word_confidences(final) is None


@pytest.mark.skipif(bool(missing_packages()), reason=f"neural extra missing: {missing_packages()}")
def test_whisper_partials_and_final_carry_its_hypothesis_confidence() -> None:
    from bargein.engines.neural.whisper_stt import WhisperStt

    pcm = np.concatenate([np.zeros(4800, np.int16), load("pocketsphinx_goforward.raw")])
    partials, final = trio.run(recognize, WhisperStt().recognizer(), pcm)
    assert isinstance(final, Hypothesis) and final.measure == WHISPER_MEASURE
    assert normalize(final) == ["go", "forward", "10", "meters"]
    assert [w.text for w in final.words] == final.split()
    assert len({w.confidence for w in final.words}) == 1  # one score for the hypothesis
    assert 0.3 < final.words[0].confidence <= 1.0  # clear speech, heard right (measured 0.6)
    assert partials and all(isinstance(p, Hypothesis) for p in partials)


# -- the stt actor passes them on ----------------------------------------------------------


class _OneFinal:
    def __init__(self, final: str) -> None:
        self.final = final

    async def start_utterance(self) -> None:
        await trio.lowlevel.checkpoint()

    async def feed(self, pcm: Int16Array) -> str | None:
        await trio.lowlevel.checkpoint()
        return None

    async def end_utterance(self) -> str:
        await trio.lowlevel.checkpoint()
        return self.final

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize("final", [sphinx(" he errand ", 0.38, 1.0), " he errand "])
def test_stt_actor_sends_the_hypothesis_on_and_traces_its_confidences(final: str) -> None:
    async def main() -> tuple[list[Event], Transcript]:
        bus = EventBus("s", trio.current_time())
        events: list[Event] = []
        bus.add_listener(events.append)
        send, receive = trio.open_memory_channel[object](4)
        utt = _Utterances(_OneFinal(final), bus, send)  # type: ignore[arg-type]
        await utt.start([])
        await utt.finish()
        return events, receive.receive_nowait()  # type: ignore[return-value]

    events, sent = trio.run(main)
    (event,) = [e for e in events if e.type == EventType.TRANSCRIPT_FINAL]
    assert sent.text == "he errand" and event.data["text"] == "he errand"
    assert type(event.data["text"]) is str  # the trace holds plain text
    if isinstance(final, Hypothesis):
        assert word_confidences(sent.text) == final.words
        assert event.data["confidence"] == [0.38, 1.0]
    else:
        assert word_confidences(sent.text) is None and "confidence" not in event.data


# -- the pure rule, on the labelled clips' measured hypotheses ----------------------------


def test_low_confidence_words_of_a_short_overlap_become_murmurs() -> None:
    # AMI "mm-hmm" heard by pocketsphinx as "need" (posterior 0.031), 0.5 s of speech
    assert murmur_masked(["need"], sphinx("need", 0.031), 500, normalize) == [MURMUR]
    # AMI A's "Menu, alright." heard as "the menu right" (0.021, 0.035, 1.0): the sure word stays
    menu = sphinx("the menu right", 0.021, 0.035, 1.0)
    assert murmur_masked(normalize(menu), menu, 800, normalize) == [MURMUR, MURMUR, "right"]


def test_confident_words_long_utterances_plain_text_and_unscored_measures_are_kept() -> None:
    # "wait" heard as "eight" (posterior 1.0 on the clip, 0.11 in a research run): a real
    # interruption keeps its word
    assert murmur_masked(["eight"], sphinx("eight", 1.0), 250, normalize) == ["eight"]
    assert murmur_masked(["eight"], sphinx("eight", 0.11), 770, normalize) == ["eight"]
    # our echo heard as "you cut" (0.992, 0.095) in a research run: the unsure word goes
    cut = sphinx("you cut", 0.992, 0.095)
    assert murmur_masked(["you", "cut"], cut, 700, normalize) == ["you", MURMUR]
    need = sphinx("need", 0.031)
    assert murmur_masked(["need"], need, 901, normalize) == ["need"]  # past short_ms
    assert murmur_masked(["need"], "need", 500, normalize) == ["need"]  # scripted: confident
    whisper = Hypothesis("minutes.", (WordConfidence("minutes.", 0.093),), WHISPER_MEASURE)
    assert murmur_masked(["minutes"], whisper, 200, normalize) == ["minutes"]  # no threshold
    strict = MurmurConfig(below={WHISPER_MEASURE: 0.1})
    assert murmur_masked(["minutes"], whisper, 200, normalize, strict) == [MURMUR]


def test_words_that_do_not_line_up_with_the_tokens_are_left_alone() -> None:
    odd = sphinx("he errand", 0.01, 0.01)
    assert murmur_masked(["he"], odd, 300, normalize) == ["he"]
    with pytest.raises(ValueError, match=r"confidence in 0\.\.1"):
        MurmurConfig(below={SPHINX_MEASURE: 1.5})


# -- the classifier with the rule ----------------------------------------------------------


def _user_at(level: float) -> UserLevel:
    user = UserLevel()
    for _ in range(50):
        user.observe(level)
    return user


@pytest.mark.parametrize(
    ("final", "kind"),
    [
        (sphinx("need", 0.031), Kind.BACKCHANNEL),  # misheard murmur: not content
        ("need", Kind.INTERRUPTION),  # the same word with no confidence: content in the final
        (sphinx("need", 0.9), Kind.INTERRUPTION),  # a sure word: content
    ],
)
def test_classifier_takes_a_short_low_confidence_final_for_a_murmur(final: str, kind: Kind) -> None:
    clf = BackchannelClassifier(user=_user_at(-20.0))
    clf.onset(10.0)
    for i in range(25):  # 0.5 s at the user's own level
        clf.frame(10.0 + 0.02 * (i + 1), -20.0)
    assert clf.speech_end(10.5) is None
    decision = clf.words(10.6, final, final=True)
    assert decision is not None and decision.kind is kind
