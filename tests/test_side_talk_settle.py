"""A side-talk verdict by level near the margin, on little of a still-going utterance, is
provisional: the floor keeps the reply ducked and judges again on later frames, words or the
stop (issue 14: a user who interrupts a few dB softer than their request was taken for side
talk on the envelope of their first word and never heard)."""

from __future__ import annotations

import numpy as np
import pytest

from bargein.actors.floor_machine import CancelTurn, DuckOutput, RestoreOutput
from bargein.decide.side_talk import BANDS, SideTalkConfig, judge
from tests.test_duck_floor import DUCK_CLASSIFY, USER_DBFS, frames, speaking
from tests.test_side_talk import profile

ZEROS = [np.zeros(BANDS, np.float32)] * 10


def test_a_level_verdict_near_the_margin_on_a_short_stretch_is_provisional() -> None:
    p = profile(-20.0)
    near = [-24.5] * 10  # -4.5 dB: between side_talk_db (-3) and 3 dB below it
    assert not judge(near, ZEROS, "eight", p, heard_ms=400).settled
    assert judge(near, ZEROS, "eight", p, heard_ms=400).side_talk
    assert judge(near, ZEROS, "eight", p, heard_ms=800).settled  # heard enough
    assert judge(near, ZEROS, "eight", p).settled  # ended (or the caller cannot wait)
    far = [-26.5] * 10  # -6.5 dB: clearly below the user
    assert judge(far, ZEROS, "eight", p, heard_ms=100).settled
    addressed = [-20.0] * 10
    assert not judge(addressed, ZEROS, "eight", p, heard_ms=100).side_talk
    with pytest.raises(ValueError):
        SideTalkConfig(settle_ms=-1.0)
    with pytest.raises(ValueError):
        SideTalkConfig(provisional_db=50.0)


def test_a_user_softer_at_first_then_at_their_level_cancels() -> None:
    m = speaking(DUCK_CLASSIFY)
    assert m.speech_started(2.2, 2.0) == [DuckOutput(1, 2.0)]
    acts = frames(m, 2.0, 2.4, USER_DBFS - 4.5)
    acts += m.transcript(2.4, "mister", final=False)
    assert acts + m.tick(2.45) == []  # the would-be cancel at 450 ms: provisional side talk
    assert frames(m, 2.4, 2.6, USER_DBFS + 1) == [CancelTurn(1, "barge_in", 2.0)]


def test_provisional_side_talk_that_stops_is_settled_on_the_whole_utterance() -> None:
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    frames(m, 2.0, 2.4, USER_DBFS - 4.5)
    m.transcript(2.4, "mister", final=False)
    assert m.tick(2.45) == []
    assert m.speech_stopped(2.6) == [RestoreOutput(1, "mister", 2.2)]


def test_provisional_side_talk_then_an_interrupt_phrase_cancels() -> None:
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    frames(m, 2.0, 2.4, USER_DBFS - 4.5)
    m.transcript(2.4, "mister", final=False)
    assert m.tick(2.45) == []
    assert m.transcript(2.5, "mister wait", final=False) == [CancelTurn(1, "barge_in", 2.0)]


def test_provisional_side_talk_over_the_replys_end_is_not_a_request() -> None:
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    frames(m, 2.0, 2.4, USER_DBFS - 4.5)
    m.transcript(2.4, "mister", final=False)
    assert m.tick(2.45) == []
    assert m.turn_finished(2.5, 1) == []
    m.speech_stopped(3.0)
    assert m.transcript(3.2, "mister quilter is the apostle", final=True) == []
