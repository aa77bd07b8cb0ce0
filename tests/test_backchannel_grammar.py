"""Acknowledgements beyond the lexicon (issue 14, seventh round): the grammar of `lexicon.py`
(`AckGrammar`) on labelled phrases both ways, fed word by word as a streaming recognizer
would; partials that may still become an acknowledgement wait, interruptions decide no later
than without the grammar."""

from __future__ import annotations

import pytest

from bargein.actors.overlap_audio import FLOOR_CLASSIFIER
from bargein.decide.backchannel import BackchannelClassifier, Config, Decision, Kind, UserLevel
from bargein.decide.lexicon import AckGrammar, Lexicon, normalize
from bargein.decide.word_classes import lone_reaction
from bargein.testing.classifier_replay import feed_event

FRAME = 0.02
USER_DBFS = -25.0
B, INT = Kind.BACKCHANNEL, Kind.INTERRUPTION
FIRST, PER_WORD = 0.2, 0.15  # the first partial 200 ms after onset, one more word per 150 ms

# Listeners' acknowledgements and assessments, none a phrase of the lexicon as a whole.
BACKCHANNELS = [
    "oh that's really interesting", "wow that's wild", "that's so cool", "oh really",
    "I see", "you're kidding", "fair enough", "oh nice", "ha ha",
    "yeah yeah yeah", "right right", "oh my god", "that makes sense", "got it thanks",
    "haha that's hilarious", "how weird", "oh wow that's amazing", "thank you", "that's sad",
    "hmm interesting", "that's pretty neat", "it's so true", "oh no that's terrible",
]  # fmt: skip
# Interruptions and the partial that decides each (index of its word, from 0): the first one
# that cannot become an acknowledgement. Only "you're ...": one word later than the lexicon
# alone (its "you're" waits, it may become "you're kidding": `word_classes.FORMULA_OPENERS`).
INTERRUPTIONS = [
    ("that's wrong", 1),
    ("that's not what I asked", 1),
    ("no wait", 0),  # a lone "no" is content at once, "no way" or not
    ("really? tell me about X instead", 1),
    ("that's enough", 1),
    ("okay stop", 1),
    ("I see, but what about Y", 2),
    ("no way, go back", 0),
    ("no I meant tomorrow", 0),
    ("you're wrong", 1),  # "you're" waits: it may become "you're kidding"
    ("wow that's incorrect", 2),
    ("how do I get there", 1),
    ("so what about the price", 0),
    ("ha ha stop", 2),
    ("that's cool but skip it", 2),
    ("interesting why is that", 1),
    # the held-out sets' words that a looser grammar held (a formula's "to", "you", "he")
    ("glad to welcome his gospel", 1),
    ("you can press a key", 0),
    ("he began a confused complaint", 0),
]


def calibrated() -> UserLevel:
    user = UserLevel()
    for _ in range(50):  # 1 s of the user's own turn
        user.observe(USER_DBFS)
    return user


def classifier(grammar: bool = True, config: Config = FLOOR_CLASSIFIER) -> BackchannelClassifier:
    lexicon = Lexicon.of() if grammar else Lexicon.of(grammar=None)
    return BackchannelClassifier(config, lexicon, calibrated())


def feed(clf: BackchannelClassifier, words: str, until: float = 2.5) -> Decision:
    """Onset at 0, frames at the user's level while it lasts, a partial with one more word
    every PER_WORD s from FIRST, speech end one word after the last partial, the final 200 ms
    later, ticks every 10 ms."""
    tokens = words.split()
    end = FIRST + len(tokens) * PER_WORD
    events: list[tuple[float, int, str, object]] = [(0.0, 0, "onset", None)]
    events += [(k * FRAME, 1, "frame", USER_DBFS) for k in range(1, int(end / FRAME) + 1)]
    events += [
        (FIRST + i * PER_WORD, 2, "partial", " ".join(tokens[: i + 1])) for i in range(len(tokens))
    ]
    events += [(end, 3, "end", None), (end + 0.2, 4, "final", words)]
    events += [(i * 0.01, 5, "tick", None) for i in range(1, int(until * 100) + 1)]
    for t, _, kind, value in sorted(events, key=lambda e: (e[0], e[1])):
        feed_event(clf, t, kind, value)
    return clf.decision


@pytest.mark.parametrize("words", BACKCHANNELS)
@pytest.mark.parametrize("config", [FLOOR_CLASSIFIER, Config()], ids=["floor", "default"])
def test_acknowledgements_beyond_the_lexicon_are_backchannels(words: str, config: Config) -> None:
    d = feed(classifier(config=config), words)
    assert d.kind is B, d


@pytest.mark.parametrize(("words", "at_word"), [("no way", 0), ("good to know", 1)])
def test_a_formula_with_a_turn_opening_word_counts_only_when_its_hypothesis_shows_it_whole(
    words: str, at_word: int
) -> None:
    # a lone "no" opens corrections ("no, I meant ..."): it is never held for "no way"
    clf = classifier()
    clf.onset(0.0)
    for k in range(1, 16):
        clf.frame(k * FRAME, USER_DBFS)
    clf.words(0.3, words)
    clf.speech_end(0.35)
    d = clf.words(0.55, words, final=True)
    assert d is not None and d.kind is B, clf.decision
    d = feed(classifier(), words)
    assert d.kind is INT and d.latency == pytest.approx(FIRST + at_word * PER_WORD), d


def test_without_the_grammar_the_heldout_f_phrase_cancels() -> None:
    # what heldout_f's "oh that's really interesting" did before: 4 words with content
    d = feed(classifier(grammar=False), "oh that's really interesting")
    assert d.kind is INT and "4 words" in d.reason, d


@pytest.mark.parametrize(("words", "at_word"), INTERRUPTIONS)
def test_interruptions_still_interrupt_at_the_first_word_that_cannot_be_an_acknowledgement(
    words: str,
    at_word: int,
) -> None:
    d = feed(classifier(), words)
    assert d.kind is INT, d
    assert d.latency == pytest.approx(FIRST + at_word * PER_WORD, abs=1e-6), d
    # never later than the lexicon alone would have decided
    without = feed(classifier(grammar=False), words)
    later = PER_WORD if words.startswith("you're") else 0.0
    assert without.kind is INT and d.latency <= without.latency + later + 1e-9, without


@pytest.mark.parametrize(
    ("partials", "final", "expected"),
    [
        # a prefix of both waits for the word that tells
        (["that's", "that's so", "that's so cool"], "that's so cool", B),
        (["that's", "that's so", "that's so not"], None, INT),
        (["oh", "oh wow", "oh wow that's", "oh wow that's really"], "oh wow that's really fun", B),
        (
            ["oh", "oh wow", "oh wow that's", "oh wow that's really", "oh wow that's really bad"],
            None,
            INT,
        ),
    ],
)
def test_a_partial_that_may_become_an_acknowledgement_waits(
    partials: list[str],
    final: str | None,
    expected: Kind,
) -> None:
    clf = classifier()
    clf.onset(0.0)
    t = 0.0
    for k, text in enumerate(partials):
        while t < FIRST + k * PER_WORD - 1e-9:
            t += FRAME
            clf.frame(t, USER_DBFS)
        clf.words(t, text)
        if k < len(partials) - 1:
            assert clf.decision.kind is Kind.UNDECIDED, (text, clf.decision)
            # held only until `max_lexical_ms` of speech, like backchannel words
            assert clf.next_deadline() == pytest.approx(FLOOR_CLASSIFIER.max_lexical_ms / 1000)
    if final is not None:
        clf.speech_end(t + 0.1)
        clf.words(t + 0.3, final, final=True)
    assert clf.decision.kind is expected, clf.decision
    if expected is INT:
        assert clf.decision.latency == pytest.approx(t, abs=1e-6)  # at the word that told


def test_a_pause_after_a_prefix_is_not_a_complete_acknowledgement() -> None:
    # "that's so ... not what I asked": the VAD's pause after "that's so" does not release it
    clf = classifier()
    clf.onset(0.0)
    for k in range(1, 13):
        clf.frame(k * FRAME, USER_DBFS)
    clf.words(0.25, "that's so")
    clf.frame(0.26, USER_DBFS)
    clf.speech_end(0.3)
    assert clf.rejected == 0 and clf.decision.kind is Kind.UNDECIDED
    assert clf.speech_resumed(0.45) is None and clf.decision.kind is Kind.UNDECIDED
    d = clf.words(0.6, "that's so not what")
    assert d is not None and d.kind is INT, clf.decision


@pytest.mark.parametrize(
    ("text", "whole", "may_become"),
    [
        ("oh that's really interesting", True, True),
        ("ha ha hahaha", True, True),
        ("cool cool cool", True, True),
        ("oh that's really", False, True),
        ("that's", False, True),
        ("how", False, True),
        ("no", False, False),  # "no way" is complete or nothing: "no" opens corrections
        ("you're", False, True),
        ("you", False, False),  # "you bet" only whole
        ("glad to", False, False),
        ("he", False, False),
        ("hehe heh hahah", True, True),
        ("what", False, False),
        ("so", False, False),
        ("that's wrong", False, False),
        ("that's not bad", False, False),
        ("really interesting but", False, False),
        ("is that right", False, False),  # a question
        ("tell me more", False, False),
        ("wow " * 8 + "wow", False, False),  # longer than max_tokens
    ],
)
def test_grammar_parse(text: str, whole: bool, may_become: bool) -> None:
    assert Lexicon.of().acknowledgement(normalize(text)) == (whole, may_become)


def test_interrupt_phrases_win_over_the_grammar() -> None:
    lex = Lexicon.of()
    assert lex.content(normalize("wow, wait"))[0] == "wait"
    assert lex.content(normalize("that's enough"))[0] == "enough"
    assert lex.content(normalize("fair enough")) == (None, [])  # a backchannel phrase
    assert lex.scan(normalize("haha, sorry")) == ("sorry", 0)


def test_the_policys_backchannels_are_units_of_the_grammar() -> None:
    custom = Lexicon.of(backchannel=("jawohl",), interrupt=("halt",))
    assert custom.scan(normalize("jawohl, that's cool")) == (None, 0)
    assert custom.scan(normalize("jawohl jawohl")) == (None, 0)
    assert custom.scan(normalize("jawohl halt")) == ("halt", 0)
    # the grammar's own classes do not include the lexicon's words: "yeah" is not in it
    assert custom.scan(["yeah"]) == (None, 1)
    off = Lexicon.of(backchannel=("jawohl",), grammar=None)
    assert off.scan(normalize("jawohl, that's cool")) == (None, 2)
    assert off.acknowledgement(normalize("wow")) == (False, False)
    # a grammar of other words: no formulas, only "neat" evaluates
    narrow = Lexicon.of(grammar=AckGrammar(evaluative=frozenset({"neat"}), formulas=frozenset()))
    assert narrow.scan(normalize("that's neat")) == (None, 0)
    assert narrow.scan(normalize("that's cool")) == (None, 1)  # "cool" only in the lexicon
    assert narrow.scan(normalize("that's wild")) == (None, 2)
    assert narrow.scan(normalize("no way")) == (None, 2)


def test_dissent_is_never_a_lone_reaction() -> None:
    assert not lone_reaction(["that's", "wrong"]) and not lone_reaction(["incorrect"])
    assert lone_reaction(["that's", "wild"])
    # a final of "that's wrong", however it arrives, is a correction
    clf = classifier()
    clf.onset(0.0)
    for k in range(1, 20):
        clf.frame(k * FRAME, USER_DBFS)
    clf.speech_end(0.4)
    d = clf.words(0.6, "That's wrong.", final=True)
    assert d is not None and d.kind is INT, clf.decision


# -- the verbs of "hold on", "hang on", "shut up" (issue 14, eighth round) --------------------


@pytest.mark.parametrize("word", ["hold", "hang", "shut"])
def test_the_verb_of_an_interrupt_phrase_is_a_command_not_a_reaction(word: str) -> None:
    # "hold" of "hold on" waited as a lone reaction ("whoa") until "on" came: 320-480 ms
    # later on the held-out sets' evenly spread words (hf_quilter_kitchen 990 ms)
    assert not lone_reaction([word])
    clf = classifier()
    events: list[tuple[float, int, str, object]] = [(0.0, 0, "onset", None)]
    events += [(k * FRAME, 1, "frame", USER_DBFS) for k in range(1, 41)]
    events += [(0.2, 2, "partial", word), (0.6, 2, "partial", f"{word} on")]
    events += [(i * 0.01, 5, "tick", None) for i in range(1, 81)]
    for t, _, kind, value in sorted(events, key=lambda e: (e[0], e[1])):
        feed_event(clf, t, kind, value)
    d = clf.decision
    assert d.kind is INT and d.latency == pytest.approx(0.2), d  # at "hold", not at "on"
