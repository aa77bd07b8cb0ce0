"""Duck mode, the classifier, side talk and the `duck` verdict in the floor machine, driven by
hand with explicit times and levels (issue 14 items 2-3, issue 13's judge leftovers)."""

from __future__ import annotations

import numpy as np
import pytest

from bargein.actors.floor_machine import (
    CancelTurn,
    DuckOutput,
    FloorMachine,
    FloorState,
    PauseOutput,
    RestoreOutput,
    ResumeOutput,
    StartTurn,
)
from bargein.actors.policy import InterruptionPolicy
from bargein.testing.judges import RecordingJudge

FRAME = 0.02
USER_DBFS = -20.0
DUCK = InterruptionPolicy(overlap_action="duck", min_words=1)
CLASSIFY = InterruptionPolicy(overlap_action="duck", classifier=True)
DUCK_CLASSIFY = InterruptionPolicy(overlap_action="duck", classifier=True, side_talk=True)


def frames(m: FloorMachine, t0: float, t1: float, dbfs: float) -> list[object]:
    """Frames of [t0, t1) at `dbfs`, in 0.1 s batches as the mic sends them; the actions."""
    out: list[object] = []
    t = t0
    while t < t1 - 1e-9:
        n = min(5, round((t1 - t) / FRAME))
        times = [t + (i + 1) * FRAME for i in range(n)]
        out += m.levels(times[-1], times, [dbfs] * n, None)
        t = times[-1]
    return out


def speechlike(m: FloorMachine, t0: float, t1: float, dbfs: float) -> list[object]:
    """Frames of [t0, t1) like speech (or its echo): 60 ms syllables at `dbfs` and 12 dB
    below in turn (the classifier takes a sound whose level hardly moves for a fan)."""
    out: list[object] = []
    t = t0
    while t < t1 - 1e-9:
        step = min(0.06, t1 - t)
        out += frames(m, t, t + step, dbfs - 12 * (round(t / 0.06) % 2))
        t += step
    return out


def speaking(policy: InterruptionPolicy) -> FloorMachine:
    """Turn 1 playing: the user asked for it at t=0..1 at USER_DBFS (their calibrated level)."""
    m = FloorMachine(policy)
    m.speech_started(0.2, 0.0)
    frames(m, 0.0, 1.0, USER_DBFS)
    m.speech_stopped(1.0)
    assert m.transcript(1.1, "tell me a story", final=True) == [StartTurn(1, "tell me a story")]
    assert m.audio_started(1.3, 1) == []
    assert m.state is FloorState.SPEAKING
    return m


def test_duck_then_restore_on_a_backchannel() -> None:
    m = speaking(DUCK)
    assert m.speech_started(2.2, 2.0) == [DuckOutput(1, 2.0)]
    assert m.state is FloorState.DUCKED
    m.speech_stopped(2.5)
    assert m.transcript(2.7, "mm hmm", final=True) == [RestoreOutput(1, "mm hmm", 2.2)]
    assert m.state is FloorState.SPEAKING


def test_duck_then_cancel_on_an_interruption() -> None:
    m = speaking(DUCK)
    assert m.speech_started(2.2, 2.0) == [DuckOutput(1, 2.0)]
    m.transcript(2.3, "no", final=False)
    assert m.voice(2.41, True) == [CancelTurn(1, "barge_in", 2.0)]
    assert m.state is FloorState.INTERRUPTED


def test_duck_waits_for_audio_and_pause_mode_is_unchanged() -> None:
    m = FloorMachine(DUCK)
    m.speech_started(0.2, 0.0)
    m.speech_stopped(1.0)
    m.transcript(1.1, "hello", final=True)
    assert m.speech_started(1.2, 1.15) == []  # thinking: nothing to duck yet
    assert m.audio_started(1.3, 1) == [DuckOutput(1, 1.15)]
    pause = speaking(InterruptionPolicy(min_words=1))
    assert pause.speech_started(2.2, 2.0) == [PauseOutput(1, 2.0)]




def test_a_judge_ducks_restores_and_sees_levels() -> None:
    judge = RecordingJudge("duck")
    m = speaking(InterruptionPolicy(judge=judge))
    assert m.speech_started(2.2, 2.0) == [DuckOutput(1, 2.0)]
    assert m.state is FloorState.DUCKED
    assert judge.views[-1].ducked is False  # asked before the duck
    assert frames(m, 2.0, 2.2, -32.0) == []
    v = judge.views[-1]
    assert v.ducked is True and v.paused is False
    assert v.level_dbfs == -32.0 and v.utterance_dbfs == pytest.approx(-32.0)
    assert v.user_dbfs == pytest.approx(USER_DBFS)
    assert v.relative_db == pytest.approx(-12.0)
    m.speech_stopped(2.4)
    assert m.tick(2.9) == [RestoreOutput(1, "", 2.2)]
    assert m.state is FloorState.SPEAKING


def test_a_judge_that_ducks_then_cancels() -> None:
    judge = RecordingJudge("duck")
    m = speaking(InterruptionPolicy(judge=judge))
    m.speech_started(2.2, 2.0)
    assert m.transcript(2.6, "no wait", final=False) == [CancelTurn(1, "barge_in", 2.0)]


def test_without_a_level_listener_the_view_has_no_levels() -> None:
    policy = InterruptionPolicy(judge=RecordingJudge("duck"))
    assert policy.hears_levels
    assert not InterruptionPolicy().hears_levels and not DUCK.hears_levels
    assert FloorMachine(DUCK).levels(1.0, [1.0], [-20.0], None) == []


# -- the classifier decides ---------------------------------------------------------------


def test_classifier_restores_a_backchannel_at_its_final() -> None:
    m = speaking(CLASSIFY)
    assert m.speech_started(2.2, 2.0) == [DuckOutput(1, 2.0)]
    frames(m, 2.0, 2.4, -18.0)
    assert m.transcript(2.35, "mm", final=False) == []
    m.speech_stopped(2.5)
    assert m.transcript(2.7, "mm hmm", final=True) == [RestoreOutput(1, "mm hmm", 2.2)]
    assert m.next_deadline() is None


def test_classifier_cancels_on_content_once_it_has_lasted() -> None:
    m = speaking(CLASSIFY)
    m.speech_started(2.2, 2.0)
    assert m.transcript(2.3, "no", final=False) == []  # content, but only 300 ms so far
    assert m.next_deadline() == pytest.approx(2.45)
    assert m.tick(2.45) == [CancelTurn(1, "barge_in", 2.0)]


def test_classifier_cancels_at_once_on_an_interrupt_phrase() -> None:
    m = speaking(CLASSIFY)
    m.speech_started(2.2, 2.0)
    assert m.transcript(2.25, "wait", final=False) == [CancelTurn(1, "barge_in", 2.0)]


def test_classifier_waits_for_words_then_calls_long_speech_a_turn() -> None:
    m = speaking(CLASSIFY)
    m.speech_started(2.2, 2.0)
    assert m.next_deadline() == pytest.approx(3.5)  # FLOOR_CLASSIFIER.max_wordless_ms
    for k in range(7):  # speech-like: its level swings 12 dB (a steady sound never is a turn)
        assert frames(m, 2.0 + 0.2 * k, 2.1 + 0.2 * k, -18.0) == []
        assert frames(m, 2.1 + 0.2 * k, 2.2 + 0.2 * k, -30.0) == []
    assert m.tick(3.5) == [CancelTurn(1, "barge_in", 2.0)]


def test_classifier_restores_wordless_noise_after_it_ends() -> None:
    m = speaking(CLASSIFY)
    m.speech_started(2.2, 2.0)
    m.speech_stopped(2.5)
    assert m.next_deadline() == pytest.approx(2.8)  # end_wait_ms without a final
    assert m.tick(2.8) == [RestoreOutput(1, "", 2.2)]
    assert m.transcript(3.0, "", final=True) == []  # its final belongs to it: no turn


# -- side talk ------------------------------------------------------------------------------


def test_quiet_speech_with_words_is_side_talk_and_restores() -> None:
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    frames(m, 2.0, 2.6, USER_DBFS - 10)
    m.transcript(2.55, "the horizon seems", final=False)
    assert m.tick(2.9) == [RestoreOutput(1, "the horizon seems", 2.2)]
    verdict = m.audio.side_talk_verdict if m.audio else None
    assert verdict is not None and verdict.side_talk
    assert verdict.relative_db == pytest.approx(-10.0)
    # its final is dropped, not a new turn
    m.speech_stopped(3.5)
    assert m.transcript(3.7, "the horizon seems extremely distant", final=True) == []
    assert m.state is FloorState.SPEAKING


def test_the_same_words_at_the_users_level_cancel() -> None:
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    frames(m, 2.0, 2.6, USER_DBFS + 2)
    assert m.transcript(2.6, "the horizon seems", final=False) == [
        CancelTurn(1, "barge_in", 2.0)
    ]


def test_an_interrupt_phrase_is_addressed_down_to_addressed_db() -> None:
    # 10 dB below the user's turns: a quiet user, addressed; 15 dB below (past addressed_db,
    # -12): a PA or a TV across the room saying "stop", judged by level as side talk
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    frames(m, 2.0, 2.4, USER_DBFS - 10)
    assert m.transcript(2.4, "stop", final=False) == [CancelTurn(1, "barge_in", 2.0)]
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    frames(m, 2.0, 2.4, USER_DBFS - 15)
    assert m.transcript(2.4, "stop", final=False) == [RestoreOutput(1, "stop", 2.2)]


def test_side_talk_also_guards_the_confirm_rule() -> None:
    m = speaking(InterruptionPolicy(min_words=1, side_talk=True))
    assert m.speech_started(2.2, 2.0) == [PauseOutput(1, 2.0)]
    frames(m, 2.0, 2.4, USER_DBFS - 10)
    assert m.transcript(2.45, "the horizon", final=False) == [ResumeOutput(1, "the horizon", 2.2)]


def test_our_echo_falls_with_the_duck_and_restores() -> None:
    m = speaking(DUCK_CLASSIFY)
    assert m.speech_started(2.2, 2.0) == [DuckOutput(1, 2.0)]
    acts = frames(m, 2.0, 2.2, USER_DBFS + 6)  # our own voice, before the duck reaches the mic
    acts += frames(m, 2.2, 2.5, USER_DBFS + 3)  # ramp and echo delay (not judged)
    acts += frames(m, 2.5, 3.5, USER_DBFS - 9)  # 15 dB down with our duck
    assert acts + m.tick(3.5) == [RestoreOutput(1, "", 2.2)]
    verdict = m.audio.side_talk_verdict if m.audio else None
    assert verdict is not None and "echo" in verdict.reason


def test_after_an_echo_restore_new_words_in_the_same_utterance_are_heard() -> None:
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    acts = frames(m, 2.0, 2.2, USER_DBFS + 6)
    acts += speechlike(m, 2.2, 3.5, USER_DBFS - 9)
    assert acts + m.tick(3.5) == [RestoreOutput(1, "", 2.2)]
    # the VAD never stopped (the echo goes on); the user talks over it
    frames(m, 3.5, 4.0, USER_DBFS + 4)
    # its words' speech began before them, at the user's level (tests/test_floor_rearm.py)
    assert m.transcript(4.0, "no", final=False) == [
        DuckOutput(1, 4.0), CancelTurn(1, "barge_in", 4.0)
    ]
    m.speech_stopped(5.0)
    assert m.transcript(5.2, "no", final=True) == [StartTurn(2, "no")]


def test_policy_validates_its_duck_fields() -> None:
    for bad in (
        {"overlap_action": "mute"},
        {"duck_db": 3.0},
        {"duck_db": float("nan")},
        {"duck_ramp_ms": 0},
        {"side_talk_db": 5.0},
    ):
        with pytest.raises(ValueError):
            InterruptionPolicy(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        InterruptionPolicy(classifier=1)  # type: ignore[arg-type]


def test_an_utterance_that_never_ends_keeps_bounded_frames() -> None:
    from bargein.actors.overlap_audio import MAX_FRAMES

    m = FloorMachine(DUCK_CLASSIFY)
    m.speech_started(0.2, 0.0)
    shape = [np.zeros(16, np.float32)] * 5
    for k in range(2 * MAX_FRAMES // 5):
        times = [k * 0.1 + (i + 1) * FRAME for i in range(5)]
        m.levels(times[-1], times, [-20.0] * 5, shape)
    assert m.audio is not None
    heard = m.audio._now
    assert len(heard.levels) <= MAX_FRAMES and len(heard.times) == len(heard.levels)
    assert len(heard.shapes) == len(heard.levels) and heard.times[-1] == pytest.approx(
        (2 * MAX_FRAMES // 5 - 1) * 0.1 + 5 * FRAME
    )


def test_a_backchannel_over_the_replys_end_does_not_open_a_turn() -> None:
    m = speaking(CLASSIFY)
    m.speech_started(2.2, 2.0)
    assert m.turn_finished(2.3, 1) == []  # the reply ended under the "mm-hmm"
    m.speech_stopped(2.6)
    assert m.transcript(2.8, "Mm-hmm.", final=True) == []
    assert m.state is FloorState.LISTENING
    # a real request in the same place still opens a turn
    m.speech_started(3.2, 3.0)
    m.speech_stopped(3.6)
    asked = m.transcript(3.8, "what about the sea", final=True)
    assert asked == [StartTurn(2, "what about the sea")]


def test_words_over_the_replys_end_are_a_request() -> None:
    m = speaking(CLASSIFY)
    m.speech_started(2.2, 2.0)
    m.turn_finished(2.3, 1)
    m.speech_stopped(2.6)
    assert m.transcript(2.8, "and then what", final=True) == [StartTurn(2, "and then what")]


def test_the_policys_lexicons_are_the_classifiers() -> None:
    named = InterruptionPolicy(
        overlap_action="duck", classifier=True, side_talk=True,
        interrupt_phrases=["computer", "stop"],  # type: ignore[arg-type]
    )
    assert named.interrupt_phrases == frozenset({"computer", "stop"})
    m = speaking(named)
    m.speech_started(2.2, 2.0)
    frames(m, 2.0, 2.4, USER_DBFS - 10)  # quiet, yet addressed by name
    assert m.transcript(2.4, "computer", final=False) == [CancelTurn(1, "barge_in", 2.0)]
    m = speaking(named)
    m.speech_started(2.2, 2.0)
    assert m.transcript(2.3, "wait", final=False) == []  # no longer an interrupt phrase
    custom = InterruptionPolicy(overlap_action="duck", classifier=True,
                                backchannels=frozenset({"roger"}))
    m = speaking(custom)
    m.speech_started(2.2, 2.0)
    m.speech_stopped(2.5)
    assert m.transcript(2.7, "roger", final=True) == [RestoreOutput(1, "roger", 2.2)]
    for bad in (["x" * 101], [""], [3], "stop"):
        with pytest.raises(ValueError):
            InterruptionPolicy(interrupt_phrases=bad)  # type: ignore[arg-type]


def test_a_frame_dated_a_hair_after_the_stop_does_not_lose_the_stop() -> None:
    """Frame times come from media times (`now - (at - end)`) and can exceed the floor's `now`
    by float rounding; the classifier must still hear the VAD's stop (seen: a cough taken for
    a turn at the 1.5 s wordless limit because its stop was refused as going back in time)."""
    m = speaking(CLASSIFY)
    m.speech_started(8.12, 8.0)
    stop = 8.715759089000276
    m.levels(stop, [stop - 0.02, stop + 2e-15], [-18.0, -18.0], None)
    m.speech_stopped(stop)
    assert m.audio is not None and m.audio.classifier is not None
    assert m.audio.classifier.rejected == 0
    assert m.tick(stop + 0.3) == [RestoreOutput(1, "", 8.12)]
