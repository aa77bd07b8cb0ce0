"""An utterance already called false (side talk with words, or our echo) in which the user then
addresses the assistant, inside the same VAD utterance: a new addressed form among the words
after the false call re-opens it, in partials and in finals, and the new overlap is judged on
those words only (issue 14: heldout_f's "could you go back to the part about the harbour",
7.8 dB below the user, after side talk was called). New content words that are our own echo
do not cancel: the guards of side talk still judge the new words."""

from __future__ import annotations

from bargein.actors.floor_machine import (
    CancelTurn,
    DuckOutput,
    FloorMachine,
    RestoreOutput,
    StartTurn,
)
from tests.test_duck_floor import DUCK_CLASSIFY, USER_DBFS, speaking, speechlike
from tests.test_floor_rearm import echo_called_false

OURS = tuple("can you imagine a small robot that lived in a garden".split())


def side_talk_called_false() -> FloorMachine:
    """Turn 1 playing; someone 10 dB below the user says "and then" from 2.0: side talk,
    restored at 2.9; the VAD still hears the utterance."""
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    acts = speechlike(m, 2.0, 2.9, USER_DBFS - 10)
    acts += m.transcript(2.9, "and then", final=False, our_words=OURS)
    assert acts == [RestoreOutput(1, "and then", 2.2)]
    return m


def say(m: FloorMachine, heard: str, words: str, dbfs: float, t: float = 2.9) -> list[object]:
    """The utterance goes on with `words`, one partial each 0.3 s (speech at `dbfs`)."""
    out: list[object] = []
    text = heard
    for w in words.split():
        out += speechlike(m, t, t + 0.3, dbfs)
        t += 0.3
        text += " " + w
        out += m.transcript(t, text, final=False, our_words=OURS)
    return out


def verdict_reason(m: FloorMachine) -> str:
    v = m.audio.side_talk_verdict if m.audio is not None else None
    assert v is not None
    return v.reason


def test_a_new_addressed_form_after_side_talk_reopens_and_cancels() -> None:
    # 8 dB below the user (side talk by level), but a form addressed to the assistant
    m = side_talk_called_false()
    acts = say(m, "and then", "could you go back to the part", USER_DBFS - 8)
    assert [type(a) for a in acts] == [DuckOutput, CancelTurn]
    assert verdict_reason(m).startswith("addressed: 'could you'")


def test_new_content_words_after_side_talk_do_not_reopen() -> None:
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems extremely distant", USER_DBFS - 8) == []
    assert m.state.name == "SPEAKING"


def test_the_reopened_overlap_is_judged_from_the_form_on() -> None:
    # the side talk went on after the call ("the horizon seems"); after a pause, the user's
    # form: the new overlap is the form and what follows, not the side talk's last words
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 8) == []
    acts = say(m, "and then the horizon seems", "could you go back", USER_DBFS - 8, t=5.0)
    assert [type(a) for a in acts] == [DuckOutput, CancelTurn]
    assert verdict_reason(m).startswith("addressed: 'could you'")


def test_a_form_inside_a_stream_of_words_does_not_reopen() -> None:
    # no pause before it: pocketsphinx's transcript of our echo makes such forms ("… they are
    # you", heldout_f's hf_reader_phone_echo with --engines embedded)
    m = side_talk_called_false()
    words = "the horizon seems could you go back"
    assert say(m, "and then", words, USER_DBFS - 8) == []
    assert m.state.name == "SPEAKING"


def test_our_echo_with_a_form_in_it_is_judged_as_our_words_on_the_new_words() -> None:
    # at the user's level after a pause, a recognizer transcribing our "can you imagine a small
    # robot that lived in a garden" back (one word wrong, so not a run of ours): the form
    # re-opens, and the new words' pairs are ours (rule 3): not a cancel. Judged with the side
    # talk's words before them, too few of the pairs would be ours.
    m = side_talk_called_false()
    acts = say(m, "and then", "the horizon seems", USER_DBFS - 8)
    acts += say(
        m,
        "and then the horizon seems",
        "can you imagine a small robot that lived in the",
        USER_DBFS,
        t=5.0,
    )
    assert [type(a) for a in acts] == [DuckOutput, RestoreOutput]
    assert verdict_reason(m).startswith("our own words")


def test_a_form_across_the_room_reopens_once_and_its_later_words_do_not_again() -> None:
    # 14 dB below the user, beyond `addressed_db`: side talk again; the words it was judged on
    # count as judged, so "go back to the part" after them does not re-open it a second time
    m = side_talk_called_false()
    acts = say(m, "and then", "could you go back to the part", USER_DBFS - 14)
    assert [type(a) for a in acts] == [DuckOutput, RestoreOutput]


def test_a_final_with_a_new_addressed_form_cancels_and_is_the_next_request() -> None:
    # finals only: the echo was called false, the user's form comes in the utterance's final
    m = echo_called_false()
    speechlike(m, 3.5, 5.0, USER_DBFS - 8)
    assert m.speech_stopped(5.4) == []
    text = "could you go back to the part about the harbour"
    assert m.transcript(5.6, text, final=True, our_words=OURS) == [
        DuckOutput(1, 5.6),
        CancelTurn(1, "barge_in", 5.6),
        StartTurn(2, text),
    ]


def test_a_final_of_our_own_words_with_a_form_in_them_stays_false() -> None:
    # our echo saying "can you imagine a small robot" is a run of our words: no form
    m = echo_called_false()
    speechlike(m, 3.5, 5.0, USER_DBFS)
    assert m.transcript(5.0, "can you imagine a small robot", final=True, our_words=OURS) == []
    assert m.state.name == "SPEAKING"


def test_a_later_final_of_the_same_vad_utterance_is_judged_as_its_rest() -> None:
    # pocketsphinx ends utterances of its own inside our echo's long VAD utterance: each final
    # after the first is the rest of the utterance called false, not words for the turn
    m = echo_called_false()
    speechlike(m, 3.5, 5.0, USER_DBFS)
    assert m.transcript(5.0, "then it rude or if you at all", final=True, our_words=OURS) == []
    speechlike(m, 5.0, 7.0, USER_DBFS)
    assert m.transcript(7.0, "and the robot counted boats", final=True, our_words=OURS) == []
    speechlike(m, 7.0, 8.0, USER_DBFS)
    assert m.speech_stopped(8.5) == []
    assert m.transcript(8.7, "rooted out the boats", final=True, our_words=OURS) == []
    assert m.state.name == "SPEAKING"


def test_a_later_final_with_a_form_in_it_cancels() -> None:
    m = echo_called_false()
    speechlike(m, 3.5, 5.0, USER_DBFS)
    assert m.transcript(5.0, "then it rude or if you at all", final=True, our_words=OURS) == []
    speechlike(m, 5.0, 7.0, USER_DBFS - 8)
    acts = m.transcript(7.0, "could you go back", final=True, our_words=OURS)
    assert acts == [DuckOutput(1, 7.0), CancelTurn(1, "barge_in", 7.0)]


def test_side_talk_going_on_past_its_final_does_not_cancel_at_its_next_final() -> None:
    # the side talk called false goes on after the recognizer's final: new content words,
    # in its next partials and final, are still the side talk's
    m = side_talk_called_false()
    assert m.transcript(3.0, "and then", final=True, our_words=OURS) == []
    acts = say(m, "", "the horizon seems extremely distant", USER_DBFS - 8, t=3.0)
    assert acts == []
    final = "the horizon seems extremely distant"
    assert m.transcript(4.6, final, final=True, our_words=OURS) == []
    assert m.state.name == "SPEAKING"


def test_after_a_final_called_false_inside_a_longer_vad_utterance_the_rest_is_judged() -> None:
    # a final of our echo with a form in it (one word wrong) re-opens and is our words (rule
    # 3) while the VAD still hears the echo: the echo's next final is still judged as its rest
    m = echo_called_false()
    speechlike(m, 3.5, 5.0, USER_DBFS)
    echo = "can you imagine a small robot that lived in the garden"
    acts = m.transcript(5.0, echo, final=True, our_words=OURS)
    assert [type(a) for a in acts] == [DuckOutput, RestoreOutput]
    speechlike(m, 5.0, 7.0, USER_DBFS)
    assert m.transcript(7.0, "and the robot counted boats", final=True, our_words=OURS) == []
    assert m.state.name == "SPEAKING"


def test_an_interrupt_phrase_the_false_call_cut_in_two_reopens() -> None:
    """heldout_l: a quiet user's "hang" was called side talk by level before "on" came; "hang
    on can you repeat the" then re-opened nothing (the new words, "on can you …", hold no
    phrase and no form where they begin). A phrase begun in the last word judged re-opens from
    that word and is judged with it."""
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    acts = speechlike(m, 2.0, 2.9, USER_DBFS - 10)
    acts += m.transcript(2.9, "hang", final=False, our_words=OURS)
    assert acts == [RestoreOutput(1, "hang", 2.2)]
    acts = say(m, "hang", "on can you", USER_DBFS - 10)
    assert [type(a) for a in acts] == [DuckOutput, CancelTurn]
    assert verdict_reason(m) == "addressed: interrupt phrase 'hang on'"
    # a last judged word that is a phrase by itself ("wait", judged far below) does not
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    speechlike(m, 2.0, 2.9, USER_DBFS - 20)
    assert m.transcript(2.9, "please wait", final=False, our_words=OURS) == [
        RestoreOutput(1, "please wait", 2.2)]
    assert say(m, "please wait", "to be called", USER_DBFS - 20) == []


def test_content_words_after_a_pause_reopen_as_a_new_utterance() -> None:
    # our echo holds the VAD open: the side talk ended, 1.5 s later the user says a statement
    # at their own level in the same recognizer utterance (heldout_l's "i need six eggs"): the
    # pause is one the VAD would have ended the side talk's utterance for, so it is judged anew
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 10) == []
    acts = say(m, "and then the horizon seems", "i need six eggs", USER_DBFS, t=5.3)
    assert [type(a) for a in acts] == [DuckOutput, CancelTurn]
    assert m.state.name == "INTERRUPTED"


def test_side_talk_going_on_after_a_pause_is_judged_again_and_restored() -> None:
    # the same talker after the pause, still 10 dB below the user: a duck, then side talk again
    m = side_talk_called_false()
    acts = say(m, "and then", "the horizon seems extremely distant", USER_DBFS - 10, t=5.0)
    assert [type(a) for a in acts] == [DuckOutput, RestoreOutput]
    assert m.state.name == "SPEAKING"


def test_content_words_after_a_pause_in_a_final_do_not_reopen() -> None:
    # a recognizer's final of a long echo-held utterance holds runs of our echo's words: only
    # a form or an interrupt phrase re-opens there (as before the pause rule)
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 10) == []
    speechlike(m, 5.0, 6.0, USER_DBFS)
    text = "and then the horizon seems i need six eggs"
    assert m.transcript(6.0, text, final=True, our_words=OURS) == []
    assert m.state.name == "SPEAKING"


def test_words_of_ours_after_a_pause_are_held_for_a_word_more_then_cancel() -> None:
    # "small robot" (a pair of our reply) at the user's level after the pause, nothing after it
    # while our echo holds the VAD open: held ducked for the word that would tell our echo's
    # transcript by its pairs, at most 1 s from 5.6; words not ours ("hey") are judged at once
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 10) == []
    acts = say(m, "and then the horizon seems", "small robot", USER_DBFS, t=5.3)
    assert [type(a) for a in acts] == [DuckOutput]
    assert speechlike(m, 5.9, 6.4, USER_DBFS) == []
    assert [type(a) for a in speechlike(m, 6.4, 6.8, USER_DBFS)] == [CancelTurn]
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 10) == []
    acts = say(m, "and then the horizon seems", "hey", USER_DBFS, t=5.3)
    acts += speechlike(m, 5.6, 6.4, USER_DBFS)  # held until the duck's effect is measured
    assert [type(a) for a in acts] == [DuckOutput, CancelTurn]


def test_content_words_after_a_pause_that_fall_with_our_duck_are_our_echo() -> None:
    # a recognizer's words for our echo after the pause ("yes i thought" for our "you said
    # you do the", pocketsphinx, heldout_h's car speakerphone): not a run of ours, but the
    # sound fell with the duck, so held until that was measured, then restored, not cancelled
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 10) == []
    acts = say(m, "and then the horizon seems", "yes", USER_DBFS, t=5.3)  # no content yet
    acts += speechlike(m, 5.6, 6.4, USER_DBFS)
    acts += m.transcript(6.4, "and then the horizon seems yes i thought", final=False,
                         our_words=OURS)
    acts += speechlike(m, 6.4, 6.5, USER_DBFS)  # before the duck reaches the microphone
    acts += speechlike(m, 6.5, 7.4, USER_DBFS - 15)
    assert [type(a) for a in acts] == [DuckOutput, RestoreOutput]
    assert "with our duck: echo" in verdict_reason(m)


def test_our_echo_transcribed_after_a_pause_is_restored_on_its_word_pairs() -> None:
    # a recognizer's transcript of our own words after the pause, at the user's level: held
    # until three words say whose they are, then restored, not cancelled on its first word
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 10) == []
    acts = say(m, "and then the horizon seems", "a small robot that lived", USER_DBFS, t=5.3)
    assert [type(a) for a in acts] == [DuckOutput, RestoreOutput]
    assert verdict_reason(m).startswith("our own words")


def test_a_reply_ending_while_words_are_held_leaves_them_the_next_request() -> None:
    # held for a word more when the reply ends: not side talk, so the utterance's final is
    # the user's next request (held side talk's final is not: `side_pending` alone)
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 10) == []
    assert [type(a) for a in say(m, "and then the horizon seems", "small robot", USER_DBFS,
                                 t=5.3)] == [DuckOutput]
    assert m.turn_finished(5.8, 1) == []
    assert m.speech_stopped(6.2) == []
    text = "and then the horizon seems small robot"
    assert m.transcript(6.4, text, final=True, our_words=OURS) == [StartTurn(2, text)]


def test_a_reply_ending_while_a_reopened_overlap_is_provisional_side_talk_starts_no_turn() -> None:
    # re-opened after the pause, 4.5 dB below the user: provisional side talk by level (not
    # held as maybe our echo), so when the reply ends its final is not the user's request
    m = side_talk_called_false()
    assert say(m, "and then", "the horizon seems", USER_DBFS - 10) == []
    assert [type(a) for a in say(m, "and then the horizon seems", "mister john",
                                 USER_DBFS - 4.5, t=5.3)] == [DuckOutput]
    assert speechlike(m, 5.9, 6.1, USER_DBFS - 4.5) == []
    assert m.turn_finished(6.1, 1) == [] and m.speech_stopped(6.4) == []
    text = "and then the horizon seems mister john"
    assert m.transcript(6.6, text, final=True, our_words=OURS) == []
