"""Outside overlap judges (`InterruptionPolicy.judge`): the floor machine asks them on every
input during an overlap and carries out their verdicts exactly."""

from __future__ import annotations

import pytest

from bargein.actors.floor_machine import (
    CancelTurn,
    FloorMachine,
    PauseOutput,
    ResumeOutput,
    StartTurn,
)
from bargein.actors.policy import InterruptionPolicy, OverlapView, Verdict
from bargein.testing.judges import RecordingJudge


def speaking(judge: RecordingJudge) -> FloorMachine:
    m = FloorMachine(InterruptionPolicy(judge=judge))
    m.speech_started(0.2, 0.0)
    m.speech_stopped(1.0)
    assert m.transcript(1.1, "hello", final=True) == [StartTurn(1, "hello")]
    assert m.audio_started(1.3, 1) == []  # no overlap: the judge is not asked
    assert judge.views == []
    return m


def test_judge_pauses_then_cancels_on_words() -> None:
    j = RecordingJudge()
    m = speaking(j)
    assert m.speech_started(2.2, 2.0) == [PauseOutput(1, 2.0)]
    v = j.views[-1]
    assert (v.trigger, v.turn, v.onset, v.assistant_audio, v.paused, v.voiced) == (
        "speech_started", 1, 2.0, True, False, True
    )  # fmt: skip
    assert m.transcript(2.5, "right", final=False) == []  # backchannel so far: still paused
    assert j.views[-1].paused and j.views[-1].content_words == 0
    assert m.transcript(2.7, "right I", final=False) == [CancelTurn(1, "barge_in", 2.0)]
    # the final words go to the next turn, as with the built-in policies
    assert m.transcript(3.0, "right I meant", final=True) == []
    m.speech_stopped(3.1)
    assert m.turn_finished(3.2, 1) == [StartTurn(2, "right I meant")]


def test_judge_resumes_at_its_own_deadline() -> None:
    j = RecordingJudge()
    m = speaking(j)
    m.speech_started(2.2, 2.0)
    assert m.next_deadline() is None
    assert m.speech_stopped(2.6) == []
    assert m.next_deadline() == pytest.approx(3.1)
    assert m.tick(3.0) == []
    assert m.tick(3.1) == [ResumeOutput(1, "", 2.2)]
    assert j.views[-1].trigger == "tick"


def test_final_without_cancel_is_a_false_interruption() -> None:
    j = RecordingJudge()
    m = speaking(j)
    m.speech_started(2.2, 2.0)
    assert m.transcript(2.9, "mm", final=True) == [ResumeOutput(1, "mm", 2.2)]


def test_judge_before_audio_is_asked_again_when_audio_starts() -> None:
    j = RecordingJudge()
    m = FloorMachine(InterruptionPolicy(judge=j))
    m.speech_started(0.2, 0.0)
    m.speech_stopped(1.0)
    m.transcript(1.1, "hello", final=True)
    assert m.speech_started(1.3, 1.2) == []  # "pause" while thinking: nothing to hold yet
    assert m.audio_started(1.5, 1) == [PauseOutput(1, 1.2)]
    assert j.views[-1].trigger == "audio_started"


def test_a_bad_verdict_is_a_clear_error() -> None:
    class Bad(RecordingJudge):
        def judge(self, view: OverlapView) -> Verdict:
            return "shout"  # type: ignore[return-value]

    m = speaking(Bad())
    with pytest.raises(ValueError, match="judge returned 'shout'"):
        m.speech_started(2.2, 2.0)


def test_policy_rejects_an_object_that_is_not_a_judge() -> None:
    with pytest.raises(TypeError, match="OverlapJudge"):
        InterruptionPolicy(judge=object())  # type: ignore[arg-type]


def test_the_final_of_an_utterance_judged_false_does_not_barge_in() -> None:
    class ResumeOnStop(RecordingJudge):
        def judge(self, view: OverlapView) -> Verdict:
            return "resume" if view.stopped_at is not None else "pause"

    m = speaking(ResumeOnStop())
    assert m.speech_started(2.2, 2.0) == [PauseOutput(1, 2.0)]
    assert m.speech_stopped(2.8) == [ResumeOutput(1, "", 2.2)]
    # its final arrives afterwards: it belongs to the utterance already judged, not a new one
    assert m.transcript(3.0, "mm yeah", final=True) == []
    # a later utterance's words for the active turn still take the floor
    assert m.transcript(4.0, "stop now", final=True) == [
        CancelTurn(1, "barge_in", None),
        StartTurn(2, "stop now"),
    ]
