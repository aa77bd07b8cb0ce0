"""An utterance already called false (our echo, the VAD still open on it) whose words the
recognizer shows only in a final (finals only, no partials): a new interrupt phrase in the
final re-opens it (issue 14: heldout_f's reader on a speakerphone, whose "is this the one about
the fox ... stop" came in one final and was dropped); content words alone do not (a real
recognizer's finals of our echo are content words)."""

from __future__ import annotations

from bargein.actors.floor_machine import CancelTurn, DuckOutput, StartTurn
from tests.test_duck_floor import USER_DBFS, frames
from tests.test_floor_rearm import echo_called_false


def test_a_final_with_an_interrupt_phrase_while_the_vad_hears_the_echo_cancels() -> None:
    m = echo_called_false()
    frames(m, 3.5, 4.0, USER_DBFS)
    # the recognizer's own endpoint: the final comes while the VAD still hears the echo
    assert m.transcript(4.0, "stop", final=True) == [
        DuckOutput(1, 4.0),
        CancelTurn(1, "barge_in", 4.0),
    ]


def test_a_final_with_an_interrupt_phrase_after_the_vad_stopped_cancels_the_reply() -> None:
    m = echo_called_false()
    frames(m, 3.5, 5.0, USER_DBFS)
    assert m.speech_stopped(5.4) == []
    acts = m.transcript(5.6, "hold on is this the one about the fox", final=True)
    assert acts[0] == DuckOutput(1, 5.6)
    assert CancelTurn(1, "barge_in", 5.6) in acts


def test_a_final_of_content_words_alone_stays_false() -> None:
    # what pocketsphinx made of our echo in that room: content words, no interrupt phrase
    m = echo_called_false()
    frames(m, 3.5, 5.0, USER_DBFS)
    assert m.transcript(5.0, "then it rude or if you at all rooted out", final=True) == []
    assert m.speech_stopped(5.4) == []
    assert m.state.name == "SPEAKING"


def test_a_final_after_the_reply_ended_is_the_users_next_request() -> None:
    m = echo_called_false()
    frames(m, 3.5, 5.0, USER_DBFS)
    assert m.turn_finished(5.1, 1) == []
    assert m.speech_stopped(5.4) == []
    assert m.transcript(5.6, "is this the one about the fox stop", final=True) == [
        StartTurn(2, "is this the one about the fox stop")
    ]


def test_a_final_of_backchannel_words_alone_stays_false() -> None:
    m = echo_called_false()
    frames(m, 3.5, 5.0, USER_DBFS)
    assert m.speech_stopped(5.4) == []
    assert m.transcript(5.6, "uh huh", final=True) == []
    assert m.state.name == "SPEAKING"


def test_a_final_after_the_vad_stopped_is_decided_at_once_not_left_waiting() -> None:
    # an interrupt phrase decides at once: nothing is left for a deadline; its words are the
    # user's next request, as a partial's overlap's final would be
    m = echo_called_false()
    frames(m, 3.5, 5.0, USER_DBFS)
    assert m.speech_stopped(5.4) == []
    assert m.transcript(5.6, "wait", final=True) == [
        DuckOutput(1, 5.6),
        CancelTurn(1, "barge_in", 5.6),
        StartTurn(2, "wait"),
    ]
    assert m.next_deadline() is None


def test_after_the_reply_ended_a_partial_waits_for_its_final() -> None:
    m = echo_called_false()
    frames(m, 3.5, 5.0, USER_DBFS)
    assert m.turn_finished(5.1, 1) == []
    assert m.transcript(5.2, "stop", final=False) == []
    assert m.speech_stopped(5.4) == []
    assert m.transcript(5.6, "stop", final=True) == [StartTurn(2, "stop")]
