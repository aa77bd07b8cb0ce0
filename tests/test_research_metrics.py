"""The research metrics as pure functions of an event list, the truth and the audio heard: each
defect of issue 13's measuring instrument, on numbers worked out by hand in the comments."""

from __future__ import annotations

from typing import Any

import pytest

from bargein.research.audio import Truth
from bargein.research.metrics import compute, percentile


def seq(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**e, "seq": i} for i, e in enumerate(events)]


def cancelled(t: float, turn: int) -> dict[str, Any]:
    return {"type": "turn_cancelled", "t": t, "turn": turn, "heard_text": "a", "tokens": 1,
            "committed_text": "a", "generated_text": "a", "synthesized_ms": 0.0,
            "heard_ms": 0.0}  # fmt: skip


def test_decisions_are_counted_per_event_and_resumed_pauses_apart_from_cancels() -> None:
    truths = [
        Truth("ask", "request", 0.0, 1.0),
        Truth("echo", "echo", 3.0, 9.0),
        Truth("mm", "backchannel", 6.0, 6.3),
    ]
    ev = seq(
        {"type": "turn_started", "t": 1.5, "turn": 1},
        {"type": "output_paused", "t": 3.2, "turn": 1, "onset": 3.1},  # echo, 100 ms
        {"type": "output_resumed", "t": 3.3, "turn": 1},
        {"type": "output_paused", "t": 4.2, "turn": 1, "onset": 4.1},  # echo, 400 ms
        {"type": "output_resumed", "t": 4.6, "turn": 1},
        {"type": "output_paused", "t": 6.1, "turn": 1, "onset": 6.0},  # backchannel, 800 ms
        {"type": "output_resumed", "t": 6.9, "turn": 1},
        {"type": "output_paused", "t": 10.1, "turn": 1, "onset": 10.0},  # no item at all
        {"type": "output_resumed", "t": 10.5, "turn": 1},
        {"type": "turn_completed", "t": 13.0, "turn": 1},
    )
    heard = [(2.0, 3.2, 1), (3.3, 4.2, 1), (4.6, 6.1, 1), (6.9, 10.1, 1), (10.5, 12.5, 1)]
    s, rows = compute(ev, truths, heard)
    m = s.summary()
    by = {r["label"]: r for r in rows}
    # The backchannel's pause lies inside the echo window too: it belongs to the backchannel only.
    assert (by["echo"]["decisions"], by["mm"]["decisions"]) == (2, 1)
    assert by["echo"]["pause_ms"] == [100.0, 400.0] and by["mm"]["outcome"] == "resume"
    # 4 false alarms (2 echo, 1 backchannel, 1 unmatched) over 1.2+0.9+1.5+3.2+2.0 = 8.8 s heard
    assert m["false_alarms_per_min"] == {"value": round(4 / (8.8 / 60), 3), "n": 4,
                                         "minutes": round(8.8 / 60, 4)}  # fmt: skip
    assert m["unmatched_decisions"] == 1 and m["false_cancels"] == 0
    assert m["resume_rate"] == {"value": 1.0, "n": 4, "of": 4}
    # audible: the 400 ms and 800 ms pauses (>= 150 ms), not the 100 ms one, over 2 items
    assert m["disruptions_per_item"] == {"value": 1.0, "n": 2, "of": 2}
    assert m["false_interruption_rate"] == {"value": 1.0, "n": 2, "of": 2}
    assert m["false_stop_ms"]["n"] == 2  # echo (first stop 3.2 - 3.0) and backchannel (0.1 s)
    assert sorted(s.false_stop_s) == pytest.approx([0.1, 0.2])
    assert m["outcomes"]["non_interruption"] == {"respond": 0, "resume": 2, "stop": 0,
                                                 "ignore": 0}  # fmt: skip


def test_a_barge_in_inside_an_echo_window_is_not_also_a_false_cancel() -> None:
    truths = [Truth("echo", "echo", 2.0, 9.0), Truth("stop", "true_interruption", 5.0, 6.0)]
    ev = seq(
        {"type": "turn_started", "t": 1.0, "turn": 1},
        {"type": "barge_in", "t": 5.2, "turn": 1, "reason": "barge_in", "onset": 5.0},
        cancelled(5.25, 1),
    )
    s, rows = compute(ev, truths, [(1.5, 5.2, 1)])
    m = s.summary()
    assert m["false_cancel_rate"] == {"value": 0.0, "n": 0, "of": 1}
    assert m["false_alarms_per_min"]["n"] == 0
    assert m["barge_in_detection_ms"]["p50"] == pytest.approx(200.0)
    assert {r["label"]: r["cancelled"] for r in rows} == {"echo": False, "stop": True}


def test_items_that_never_overlapped_the_assistant_are_out_of_the_denominators() -> None:
    truths = [
        Truth("cough", "noise", 3.0, 3.3),  # over the reply, ignored
        Truth("late", "backchannel", 20.0, 20.4),  # long after every turn ended
        Truth("early", "true_interruption", 0.2, 0.6),  # before any turn
    ]
    ev = seq(
        {"type": "turn_started", "t": 1.0, "turn": 1},
        {"type": "turn_completed", "t": 6.0, "turn": 1},
    )
    s, rows = compute(ev, truths, [(2.0, 6.0, 1)])
    m = s.summary()
    assert [r["overlap"] for r in rows] == ["none", "speaking", "none"]
    assert m["false_interruption_rate"] == {"value": 0.0, "n": 0, "of": 1}
    assert m["missed_interruption_rate"] == {"value": None, "n": 0, "of": 0}
    assert m["counts"]["items_without_overlap"] == 2
    assert m["outcomes"]["non_interruption"]["ignore"] == 1


def test_missed_means_no_take_over_within_the_window() -> None:
    truths = [
        Truth("slow", "true_interruption", 3.0, 3.5),  # cancelled 2.55 s later: missed
        Truth("at_end", "true_interruption", 10.0, 10.6),  # the reply ends 0.3 s later
    ]
    ev = seq(
        {"type": "turn_started", "t": 1.0, "turn": 1},
        {"type": "barge_in", "t": 5.55, "turn": 1, "reason": "barge_in", "onset": 3.0},
        cancelled(5.6, 1),
        {"type": "turn_started", "t": 6.0, "turn": 2},
        {"type": "turn_completed", "t": 10.3, "turn": 2},
        {"type": "turn_started", "t": 11.5, "turn": 3},
        {"type": "turn_completed", "t": 14.0, "turn": 3},
    )
    s, rows = compute(ev, truths, [(2.0, 5.55, 1), (7.0, 10.3, 2), (12.0, 14.0, 3)])
    m = s.summary()
    by = {r["label"]: r for r in rows}
    assert (by["slow"]["stop_ms"], by["slow"]["missed"]) == (2550.0, True)
    assert (by["at_end"]["stop_ms"], by["at_end"]["missed"]) == (pytest.approx(300.0), False)
    assert by["at_end"]["outcome"] == "respond"  # the user got the floor and an answer
    assert m["missed_interruption_rate"] == {"value": 0.5, "n": 1, "of": 2}


def test_response_latency_apart_for_interruptions_and_tor() -> None:
    truths = [
        Truth("ask", "request", 0.0, 1.0),
        Truth("cut", "true_interruption", 5.0, 6.0),
        Truth("mm", "backchannel", 12.0, 12.3),
        Truth("ok", "backchannel", 16.0, 16.2),
    ]
    ev = seq(
        {"type": "turn_started", "t": 1.5, "turn": 1},
        {"type": "barge_in", "t": 5.3, "turn": 1, "reason": "barge_in", "onset": 5.0},
        cancelled(5.3, 1),
        {"type": "turn_started", "t": 6.6, "turn": 2},
        {"type": "barge_in", "t": 12.1, "turn": 2, "reason": "barge_in", "onset": 12.0},
        cancelled(12.1, 2),
        {"type": "turn_started", "t": 13.0, "turn": 3},  # answers "mm": 0.8 s, 2 words
        {"type": "turn_completed", "t": 16.1, "turn": 3},  # still speaking when "ok" comes
        {"type": "turn_started", "t": 16.5, "turn": 4},  # answers "ok": 0.8 s but 4 words
        {"type": "turn_completed", "t": 18.0, "turn": 4},
    )
    heard = [(2.0, 5.3, 1), (7.2, 12.1, 2), (13.2, 13.7, 3), (15.8, 16.1, 3), (16.8, 17.6, 4)]
    words = [(13.2, 3, "Oh"), (13.4, 3, "sure"),
             (16.8, 4, "a"), (17.0, 4, "b"), (17.2, 4, "c"), (17.4, 4, "d")]  # fmt: skip
    s, rows = compute(ev, truths, heard, words)
    m = s.summary()
    assert sorted(s.response_s) == pytest.approx([1.0])  # ask: 1.0 -> 2.0, the request only
    assert sorted(s.interruption_response_s) == pytest.approx([1.2])  # cut: 6.0 -> 7.2
    # cut: turn 2 is heard 7.2 .. 12.0 inside [5.0, next item 12.0): >= 1 s
    assert m["tor_interruption"] == {"value": 1.0, "n": 1, "of": 1}
    # mm: 0.5 + 0.2 s before "ok" and 2 words: no take-over; ok: 0.8 s but > 3 words: one
    assert m["tor_backchannel"] == {"value": 0.5, "n": 1, "of": 2}
    assert [r.get("outcome") for r in rows] == [None, "respond", "respond", "respond"]


def test_resume_rate_counts_only_false_pauses() -> None:
    truths = [Truth("cut", "true_interruption", 3.0, 4.0), Truth("mm", "backchannel", 7.0, 7.3)]
    ev = seq(
        {"type": "turn_started", "t": 1.0, "turn": 1},
        {"type": "output_paused", "t": 3.1, "turn": 1, "onset": 3.0},
        {"type": "barge_in", "t": 3.5, "turn": 1, "reason": "barge_in", "onset": 3.0},
        cancelled(3.5, 1),
        {"type": "turn_started", "t": 5.0, "turn": 2},
        {"type": "output_paused", "t": 7.1, "turn": 2, "onset": 7.0},
        {"type": "output_resumed", "t": 7.9, "turn": 2},
        {"type": "turn_completed", "t": 10.0, "turn": 2},
    )
    s, _ = compute(ev, truths, [(2.0, 3.1, 1), (5.5, 7.1, 2), (7.9, 10.0, 2)])
    m = s.summary()
    assert m["resume_rate"] == {"value": 1.0, "n": 1, "of": 1}
    assert m["resume_gap_ms"]["p50"] == pytest.approx(800.0)
    # the interruption's pause-then-cancel is not a false alarm of any kind
    assert (m["false_alarms_per_min"]["n"], m["false_cancels"]) == (1, 0)
    assert s.stop_s == pytest.approx([0.1])  # the interruption's stop: the pause at 3.1
    assert s.false_stop_s == pytest.approx([0.1])  # and the backchannel's: 7.1 - 7.0


def test_pause_take_over_and_premature_turns() -> None:
    truths = [Truth("jfk", "user_pause", 0.0, 6.0)]
    ev = seq(
        {"type": "turn_started", "t": 2.5, "turn": 1},  # inside the user's pause
        {"type": "barge_in", "t": 4.5, "turn": 1, "reason": "barge_in", "onset": 4.3},
        cancelled(4.5, 1),
        {"type": "turn_started", "t": 6.5, "turn": 2},
        {"type": "turn_completed", "t": 9.0, "turn": 2},
    )
    s, rows = compute(ev, truths, [(3.0, 4.5, 1), (7.0, 9.0, 2)])
    m = s.summary()
    assert m["tor_pause"] == {"value": 1.0, "n": 1, "of": 1}  # 1.5 s said inside the pause
    assert m["premature_turn_rate"] == {"value": 1.0, "n": 1, "of": 1}
    assert rows[0]["response_ms"] == pytest.approx(-3000.0)  # it talked before the user ended


def test_percentile_is_nearest_rank() -> None:
    # One definition for every figure (bargein.stats): a p90 is a value some item saw.
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.9) == 4.0
    assert percentile([4.0, 1.0, 3.0, 2.0], 0.5) == 2.0
    assert percentile([5.0], 0.99) == 5.0


def test_a_turn_answers_the_item_that_ended_before_it_not_a_window_open_around_it() -> None:
    truths = [
        Truth("ask", "request", 0.0, 1.0),
        Truth("echo", "echo", 0.8, 9.0),  # the window opens before the reply to "ask"
        Truth("cough", "noise", 1.4, 1.7),  # still sounding when turn 1 starts
    ]
    ev = seq(
        {"type": "turn_started", "t": 1.5, "turn": 1},
        {"type": "turn_completed", "t": 6.0, "turn": 1},
    )
    _, rows = compute(ev, truths, [(2.0, 6.0, 1)])
    by = {r["label"]: r for r in rows}
    assert by["ask"]["responded"] and by["ask"]["response_ms"] == pytest.approx(1000.0)
    assert not by["echo"]["responded"] and by["echo"]["outcome"] == "ignore"
    assert not by["cough"]["responded"]


def test_a_pause_of_150_ms_is_audible_one_of_140_is_not() -> None:
    # Issue 14's definition: a false pause >= 150 ms (or a cancel) is an audible disruption.
    truths = [Truth("mm", "backchannel", 3.0, 3.3), Truth("uh", "backchannel", 6.0, 6.3)]
    ev = seq(
        {"type": "turn_started", "t": 1.0, "turn": 1},
        {"type": "output_paused", "t": 3.1, "turn": 1, "onset": 3.0},
        {"type": "output_resumed", "t": 3.24, "turn": 1},  # 140 ms
        {"type": "output_paused", "t": 6.1, "turn": 1, "onset": 6.0},
        {"type": "output_resumed", "t": 6.25, "turn": 1},  # 150 ms
        {"type": "turn_completed", "t": 9.0, "turn": 1},
    )
    s, _ = compute(ev, truths, [(2.0, 3.1, 1), (3.24, 6.1, 1), (6.25, 9.0, 1)])
    assert s.summary()["disruptions_per_item"] == {"value": 0.5, "n": 1, "of": 2}


def test_ducks_are_decisions_a_restored_duck_is_no_disruption() -> None:
    truths = [
        Truth("ask", "request", 0.0, 1.0),
        Truth("mm", "backchannel", 4.0, 4.4),
        Truth("cough", "noise", 6.0, 6.3),
        Truth("stop", "true_interruption", 8.0, 9.5),
        Truth("tv", "side_talk", 10.5, 11.5),
    ]
    ev = seq(
        {"type": "turn_started", "t": 1.5, "turn": 1},
        # mm: ducked 4.12 .. 4.62 and restored: the reply went on, quieter, 500 ms
        {"type": "output_ducked", "t": 4.12, "turn": 1, "onset": 4.0, "depth_db": 12.0},
        {"type": "output_restored", "t": 4.62, "turn": 1, "ducked_at": 4.12, "text": "mm"},
        # cough: ducked, then paused 6.3 .. 6.5 (200 ms >= 150: audible) and resumed
        {"type": "output_ducked", "t": 6.1, "turn": 1, "onset": 6.0, "depth_db": 12.0},
        {"type": "output_paused", "t": 6.3, "turn": 1, "onset": 6.0},
        {"type": "output_resumed", "t": 6.5, "turn": 1},
        # stop: ducked at 8.12, proved an interruption: cancelled 450 ms after the onset
        {"type": "output_ducked", "t": 8.12, "turn": 1, "onset": 8.0, "depth_db": 12.0},
        {"type": "barge_in", "t": 8.45, "turn": 1, "reason": "barge_in", "onset": 8.0},
        cancelled(8.47, 1),
        {"type": "turn_started", "t": 9.8, "turn": 2},
        # tv: ducked, then cancelled: a false cancel, whatever came before it
        {"type": "output_ducked", "t": 10.6, "turn": 2, "onset": 10.5, "depth_db": 12.0},
        {"type": "barge_in", "t": 10.9, "turn": 2, "reason": "barge_in", "onset": 10.5},
        cancelled(10.92, 2),
        {"type": "turn_started", "t": 12.0, "turn": 3},
        {"type": "turn_completed", "t": 13.0, "turn": 3},
    )
    # a ducked reply keeps playing: turn 1 is heard 2.0 .. 6.3 (ducked twice), paused to 6.5
    heard = [(2.0, 6.3, 1), (6.5, 8.45, 1), (10.0, 10.9, 2), (12.5, 13.0, 3)]
    s, rows = compute(ev, truths, heard)
    m = s.summary()
    by = {r["label"]: r for r in rows}
    assert (by["mm"]["ducks"], by["mm"]["ducks_restored"], by["mm"]["duck_ms"]) == (1, 1, [500.0])
    assert not by["mm"]["stopped"] and by["mm"]["outcome"] == "resume"
    assert (by["cough"]["ducks"], by["cough"]["pause_ms"]) == (1, [200.0])
    assert by["cough"]["stopped"] and by["cough"]["outcome"] == "resume"
    assert by["cough"]["stop_ms"] == pytest.approx(300.0)  # heard to 6.3
    # the interruption: the duck then the cancel are one decision, detected at 450 ms
    assert by["stop"]["decisions"] == 1 and by["stop"]["detection_ms"] == pytest.approx(450.0)
    assert m["reaction_ms"]["p50"] == pytest.approx(120.0)  # the duck, 8.12 - 8.0
    assert by["stop"]["stop_ms"] == pytest.approx(450.0) and not by["stop"]["missed"]
    assert by["tv"]["cancelled"] and by["tv"]["outcome"] == "respond"  # turn 3 answered it
    # 3 overlapped non-interruptions; audible: the cough's 200 ms pause and the tv's cancel
    assert m["disruptions_per_item"] == {"value": 0.6667, "n": 2, "of": 3}
    assert m["false_cancel_rate"] == {"value": 0.3333, "n": 1, "of": 3}
    assert m["ducks_per_item"] == {"value": 0.3333, "n": 1, "of": 3}  # mm's duck only
    assert m["duck_ms"] == {"n": 1, "p50": 500.0, "p90": 500.0, "p99": 500.0}
    assert m["false_interruption_rate"] == {"value": 1.0, "n": 3, "of": 3}  # every one reacted
    assert s.false_stop_s == pytest.approx([0.3, 0.4])  # cough and tv; the duck stopped nothing
    assert m["resume_rate"] == {"value": 1.0, "n": 1, "of": 1}  # the one false pause resumed
    # 3 false alarms over 4.3 + 1.95 + 0.9 + 0.5 = 7.65 s heard
    assert m["false_alarms_per_min"] == {"value": round(3 / (7.65 / 60), 3), "n": 3,
                                         "minutes": round(7.65 / 60, 4)}  # fmt: skip
    assert m["outcomes"]["non_interruption"] == {"respond": 1, "resume": 2, "stop": 0,
                                                 "ignore": 0}  # fmt: skip
    assert m["missed_interruption_rate"] == {"value": 0.0, "n": 0, "of": 1}
    # the same figures per non-interruption kind, each over its own items
    kinds = m["by_kind"]
    assert kinds["backchannel"]["ducks_per_item"] == {"value": 1.0, "n": 1, "of": 1}
    assert kinds["backchannel"]["disruptions_per_item"] == {"value": 0.0, "n": 0, "of": 1}
    assert kinds["noise"]["disruptions_per_item"] == {"value": 1.0, "n": 1, "of": 1}
    assert kinds["side_talk"]["false_cancel_rate"] == {"value": 1.0, "n": 1, "of": 1}
    assert kinds["echo"]["false_interruption_rate"] == {"value": None, "n": 0, "of": 0}


def test_a_cancel_that_began_on_echo_belongs_to_the_user_who_talked_over_it() -> None:
    # Double talk: the VAD opens an utterance on our own echo at 4.1 and it runs on into the
    # user's interruption (5.0 ..), whose words cancel at 5.4: the interruption's decision.
    truths = [Truth("echo", "echo", 2.0, 9.0), Truth("stop", "true_interruption", 5.0, 6.0)]
    ev = seq(
        {"type": "turn_started", "t": 1.0, "turn": 1},
        {"type": "output_paused", "t": 4.22, "turn": 1, "onset": 4.1},
        {"type": "barge_in", "t": 5.4, "turn": 1, "reason": "barge_in", "onset": 4.1},
        cancelled(5.42, 1),
    )
    s, rows = compute(ev, truths, [(1.5, 4.22, 1)])
    m = s.summary()
    by = {r["label"]: r for r in rows}
    assert (by["echo"]["decisions"], by["stop"]["decisions"]) == (0, 1)
    assert by["stop"]["detection_ms"] == pytest.approx(400.0)
    assert m["false_cancel_rate"] == {"value": 0.0, "n": 0, "of": 1}
    assert m["false_alarms_per_min"]["n"] == 0


def test_missed_within_the_targets_1_5_s_apart_from_the_1_s_window() -> None:
    truths = [Truth("cut", "true_interruption", 3.0, 4.0)]
    ev = seq(
        {"type": "turn_started", "t": 1.0, "turn": 1},
        {"type": "barge_in", "t": 4.2, "turn": 1, "reason": "barge_in", "onset": 3.0},
        cancelled(4.2, 1),
    )
    m = compute(ev, truths, [(2.0, 4.2, 1)])[0].summary()  # the audio stopped 1.2 s after
    assert m["missed_interruption_rate"] == {"value": 1.0, "n": 1, "of": 1}
    assert m["missed_1500ms_rate"] == {"value": 0.0, "n": 0, "of": 1}


def _cancel_on_words_inside_the_echo() -> list[dict[str, Any]]:
    """A cancel on words recognized at 22.40 inside our echo's open VAD utterance (a re-opened
    overlap: onset = the words' time); `hd_echo_arctic`'s shape."""
    return seq(
        {"type": "turn_started", "t": 18.6, "turn": 3},
        {"type": "output_ducked", "t": 22.4, "turn": 3, "onset": 22.4},
        {"type": "barge_in", "t": 22.4, "turn": 3, "reason": "barge_in", "onset": 22.4},
        cancelled(22.42, 3),
    )


# A cancel taken on words inside our own echo's VAD utterance (the floor re-opens the overlap
# on the words, so the episode's onset is when they were recognized, just after they were
# spoken) belongs to the user speech that said them, not to the echo window.


def test_a_cancel_on_words_recognized_after_a_short_word_ended_belongs_to_that_word() -> None:
    # hd_echo_arctic: the echo keeps one VAD utterance open from 19.38; "wait" is spoken
    # 22.09-22.39 inside it and recognized at 22.40: the floor ducks and cancels at once,
    # onset 22.40 (the words' time), 10 ms after the word ended.
    truths = [Truth("echo", "echo", 2.5, 32.0), Truth("wait", "true_interruption", 22.09, 22.39)]
    s, rows = compute(_cancel_on_words_inside_the_echo(), truths, [(19.3, 22.4, 3)])
    m = s.summary()
    by = {r["label"]: r for r in rows}
    assert (by["echo"]["cancelled"], by["wait"]["cancelled"]) == (False, True)
    assert by["wait"]["detection_ms"] == pytest.approx(310.0)
    assert m["false_cancel_rate"] == {"value": 0.0, "n": 0, "of": 1}


def test_a_cancel_long_after_the_last_user_speech_stays_the_echos() -> None:
    # The same, but nothing was said within the slack before the cancel: our echo's own
    # words cancelled, and that is a false cancel of the echo window.
    truths = [Truth("echo", "echo", 2.5, 32.0), Truth("wait", "true_interruption", 21.0, 21.3)]
    s, rows = compute(_cancel_on_words_inside_the_echo(), truths, [(19.3, 22.4, 3)])
    by = {r["label"]: r for r in rows}
    assert (by["echo"]["cancelled"], by["wait"]["cancelled"]) == (True, False)
    assert s.summary()["false_cancel_rate"]["n"] == 1


def test_detection_after_the_first_word_is_the_runtimes_share_of_the_detection() -> None:
    # "stop" (8.0 .. 8.42, its one word ending at 8.42) is cancelled at 8.45: detected 450 ms
    # after the onset, 30 ms after its first word was whole; "wait" has no timed words.
    truths = [
        Truth("ask", "request", 0.0, 1.0),
        Truth("stop", "true_interruption", 8.0, 8.42, words=((8.0, 8.42, "stop"),)),
        Truth("wait", "true_interruption", 11.0, 11.5),
    ]
    ev = seq(
        {"type": "turn_started", "t": 1.5, "turn": 1},
        {"type": "barge_in", "t": 8.45, "turn": 1, "reason": "barge_in", "onset": 8.0},
        cancelled(8.47, 1),
        {"type": "turn_started", "t": 9.0, "turn": 2},
        {"type": "barge_in", "t": 11.3, "turn": 2, "reason": "barge_in", "onset": 11.0},
        cancelled(11.32, 2),
    )
    heard = [(2.0, 8.45, 1), (9.5, 11.3, 2)]
    s, rows = compute(ev, truths, heard)
    by = {r["label"]: r for r in rows}
    assert by["stop"]["detection_ms"] == pytest.approx(450.0)
    assert by["stop"]["after_word_ms"] == pytest.approx(30.0)
    assert "after_word_ms" not in by["wait"] and by["wait"]["detection_ms"] == pytest.approx(300.0)
    m = s.summary()
    assert m["detection_after_word_ms"] == {"n": 1, "p50": 30.0, "p90": 30.0, "p99": 30.0}
    assert m["barge_in_detection_ms"]["n"] == 2
