"""The floor's turn-taking machine, driven by hand with explicit times."""

from __future__ import annotations

import pytest

from bargein.actors.floor_machine import (
    CancelTurn,
    EndSession,
    FloorMachine,
    FloorState,
    PauseOutput,
    ResumeOutput,
    StartTurn,
)
from bargein.actors.policy import InterruptionPolicy


def speaking_machine(policy: InterruptionPolicy) -> FloorMachine:
    """A machine whose turn 1 is playing audio (the user said 'hello' at t=0..1)."""
    m = FloorMachine(policy)
    assert m.speech_started(0.2, 0.0) == []
    assert m.state is FloorState.USER_SPEAKING
    m.speech_stopped(1.0)
    assert m.transcript(1.1, "hello", final=True) == [StartTurn(1, "hello")]
    assert m.state is FloorState.THINKING
    assert m.audio_started(1.3, 1) == []
    assert m.state is FloorState.SPEAKING
    return m


def test_user_turn_ends_on_final_transcript_when_silent() -> None:
    m = FloorMachine(InterruptionPolicy())
    assert m.state is FloorState.LISTENING
    m.speech_started(0.3, 0.1)
    assert m.transcript(0.5, "what time", final=False) == []
    m.speech_stopped(1.0)
    assert m.transcript(1.2, "what time is it", final=True) == [StartTurn(1, "what time is it")]


def test_empty_final_is_not_a_turn() -> None:
    m = FloorMachine(InterruptionPolicy())
    m.speech_started(0.3, 0.1)
    m.speech_stopped(1.0)
    assert m.transcript(1.2, "", final=True) == []
    assert m.state is FloorState.LISTENING


def test_final_arriving_while_user_speaks_again_waits_and_joins() -> None:
    m = FloorMachine(InterruptionPolicy())
    m.speech_started(0.3, 0.1)
    m.speech_stopped(1.0)
    m.speech_started(1.1, 1.05)  # the user carried on before the first final arrived
    assert m.transcript(1.2, "what is", final=True) == []
    m.speech_stopped(2.0)
    assert m.transcript(2.1, "twelve times seven", final=True) == [
        StartTurn(1, "what is twelve times seven")
    ]


def test_onset_policy_cancels_at_once() -> None:
    m = speaking_machine(InterruptionPolicy(mode="onset"))
    assert m.speech_started(2.0, 1.9) == [CancelTurn(1, "barge_in", 1.9)]
    assert m.state is FloorState.INTERRUPTED
    m.speech_stopped(3.0)
    # The interrupting utterance becomes the next turn, even before the old one is gone.
    assert m.transcript(3.1, "stop please", final=True) == [StartTurn(2, "stop please")]
    assert m.turn_finished(3.2, 1) == []
    assert m.active_turn == 2


def test_onset_policy_cancels_while_thinking_too() -> None:
    m = FloorMachine(InterruptionPolicy(mode="onset"))
    m.speech_started(0.2, 0.0)
    m.speech_stopped(1.0)
    m.transcript(1.1, "hello", final=True)
    assert m.speech_started(1.2, 1.15) == [CancelTurn(1, "barge_in", 1.15)]


def test_confirm_policy_pauses_then_cancels_after_min_speech() -> None:
    m = speaking_machine(InterruptionPolicy(mode="confirm", min_speech_ms=400))
    assert m.speech_started(2.2, 2.0) == [PauseOutput(1, 2.0)]
    assert m.state is FloorState.PAUSED
    assert m.next_deadline() == pytest.approx(2.4)
    assert m.tick(2.3) == []
    assert m.tick(2.4) == [CancelTurn(1, "barge_in", 2.0)]


def test_confirm_policy_backchannel_resumes() -> None:
    m = speaking_machine(InterruptionPolicy(mode="confirm", min_speech_ms=400))
    m.speech_started(2.2, 2.1)
    m.speech_stopped(2.3)
    assert m.tick(2.6) == []  # stopped before the confirmation time: no cancel
    assert m.transcript(2.7, "mm-hmm", final=True) == [ResumeOutput(1, "mm-hmm", 2.2)]
    assert m.state is FloorState.SPEAKING
    assert m.active_turn == 1


def test_confirm_policy_short_real_words_cancel() -> None:
    m = speaking_machine(InterruptionPolicy(mode="confirm", min_speech_ms=800))
    m.speech_started(2.2, 2.1)
    m.speech_stopped(2.4)
    assert m.transcript(2.5, "stop", final=True) == [
        CancelTurn(1, "barge_in", 2.1),
        StartTurn(2, "stop"),
    ]


def test_confirm_policy_min_words_waits_for_partials() -> None:
    m = speaking_machine(InterruptionPolicy(mode="confirm", min_speech_ms=200, min_words=2))
    m.speech_started(2.2, 2.0)
    assert m.next_deadline() is None  # no words yet: time alone cannot confirm
    assert m.tick(3.0) == []
    assert m.transcript(3.1, "yeah", final=False) == []  # a backchannel so far
    # no longer a backchannel as a whole: every word counts
    assert m.transcript(3.2, "yeah wait", final=False) == [CancelTurn(1, "barge_in", 2.0)]


def test_false_interruption_resumes_after_timeout_without_transcript() -> None:
    m = speaking_machine(
        InterruptionPolicy(mode="confirm", min_speech_ms=400, resume_timeout_ms=1000)
    )
    m.speech_started(2.2, 2.1)
    m.speech_stopped(2.3)
    assert m.next_deadline() == pytest.approx(3.3)
    assert m.tick(3.29) == []
    assert m.tick(3.3) == [ResumeOutput(1, "", 2.2)]


def test_overlap_while_thinking_does_not_pause_but_holds_first_audio() -> None:
    m = FloorMachine(InterruptionPolicy(mode="confirm", min_speech_ms=400))
    m.speech_started(0.2, 0.0)
    m.speech_stopped(1.0)
    m.transcript(1.1, "hello", final=True)
    assert m.speech_started(1.3, 1.2) == []  # nothing is playing yet
    assert m.audio_started(1.4, 1) == [PauseOutput(1, 1.2)]
    assert m.tick(1.6) == [CancelTurn(1, "barge_in", 1.2)]


def test_echo_guard_ignores_onsets_right_after_audio_starts() -> None:
    m = speaking_machine(InterruptionPolicy(mode="onset", echo_guard_ms=300))
    assert m.speech_started(1.5, 1.45) == []  # 150 ms after our audio began: our own echo
    m.speech_stopped(1.6)
    assert m.speech_started(2.0, 1.9) == [CancelTurn(1, "barge_in", 1.9)]


def test_text_input_and_client_interrupt() -> None:
    m = speaking_machine(InterruptionPolicy())
    assert m.text_input(2.0, "tell me a story") == [
        CancelTurn(1, "text_input", None),
        StartTurn(2, "tell me a story"),
    ]
    assert m.interrupt(2.5) == [CancelTurn(2, "client", None)]
    assert m.interrupt(2.6) == []  # already cancelled


def test_session_ends_when_input_ended_and_idle() -> None:
    m = speaking_machine(InterruptionPolicy())
    assert m.input_ended(2.0) == []  # still answering
    assert m.turn_finished(5.0, 1) == [EndSession("input_ended")]
    assert m.turn_finished(5.1, 1) == []  # only once


def test_content_words_ignore_backchannels() -> None:
    p = InterruptionPolicy()
    assert p.content_words("Mm-hmm, yeah.") == 0
    assert p.content_words("yeah but wait") == 3  # not a backchannel: every word counts


def test_policy_validation() -> None:
    with pytest.raises(ValueError):
        InterruptionPolicy(mode="never")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        InterruptionPolicy(history_commit="all")  # type: ignore[arg-type]
