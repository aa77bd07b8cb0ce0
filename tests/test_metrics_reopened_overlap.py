"""A cancel taken on words inside our own echo's VAD utterance (the floor re-opens the overlap
on the words, so the episode's onset is when they were recognized, just after they were
spoken) belongs to the user speech that said them, not to the echo window."""

from __future__ import annotations

from typing import Any

import pytest

from bargein.research.audio import Truth
from bargein.research.metrics import compute


def seq(*events: dict[str, Any]) -> list[dict[str, Any]]:
    return [{**e, "seq": i} for i, e in enumerate(events)]


def cancelled(t: float, turn: int) -> dict[str, Any]:
    return {"type": "turn_cancelled", "t": t, "turn": turn, "heard_text": "a", "tokens": 1,
            "committed_text": "a", "generated_text": "a", "synthesized_ms": 0.0,
            "heard_ms": 0.0}  # fmt: skip


def test_a_cancel_on_words_recognized_after_a_short_word_ended_belongs_to_that_word() -> None:
    # hd_echo_arctic: the echo keeps one VAD utterance open from 19.38; "wait" is spoken
    # 22.09-22.39 inside it and recognized at 22.40: the floor ducks and cancels at once,
    # onset 22.40 (the words' time), 10 ms after the word ended.
    truths = [Truth("echo", "echo", 2.5, 32.0), Truth("wait", "true_interruption", 22.09, 22.39)]
    ev = seq(
        {"type": "turn_started", "t": 18.6, "turn": 3},
        {"type": "output_ducked", "t": 22.4, "turn": 3, "onset": 22.4},
        {"type": "barge_in", "t": 22.4, "turn": 3, "reason": "barge_in", "onset": 22.4},
        cancelled(22.42, 3),
    )
    s, rows = compute(ev, truths, [(19.3, 22.4, 3)])
    m = s.summary()
    by = {r["label"]: r for r in rows}
    assert (by["echo"]["cancelled"], by["wait"]["cancelled"]) == (False, True)
    assert by["wait"]["detection_ms"] == pytest.approx(310.0)
    assert m["false_cancel_rate"] == {"value": 0.0, "n": 0, "of": 1}


def test_a_cancel_long_after_the_last_user_speech_stays_the_echos() -> None:
    # The same, but nothing was said within the slack before the cancel: our echo's own
    # words cancelled, and that is a false cancel of the echo window.
    truths = [Truth("echo", "echo", 2.5, 32.0), Truth("wait", "true_interruption", 21.0, 21.3)]
    ev = seq(
        {"type": "turn_started", "t": 18.6, "turn": 3},
        {"type": "output_ducked", "t": 22.4, "turn": 3, "onset": 22.4},
        {"type": "barge_in", "t": 22.4, "turn": 3, "reason": "barge_in", "onset": 22.4},
        cancelled(22.42, 3),
    )
    s, rows = compute(ev, truths, [(19.3, 22.4, 3)])
    by = {r["label"]: r for r in rows}
    assert (by["echo"]["cancelled"], by["wait"]["cancelled"]) == (True, False)
    assert s.summary()["false_cancel_rate"]["n"] == 1
