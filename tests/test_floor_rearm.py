"""An overlap re-opened by new words inside an utterance already called false (our echo or a
TV going on, the user talking over it): the classifier dates its speech up to
`early_content_ms` before the words, never before the false call, and hears its frames since
(issue 14: detection of an interruption over a long echo was 200 ms later than anywhere else)."""

from __future__ import annotations

from bargein.actors.floor_machine import CancelTurn, DuckOutput, FloorMachine, RestoreOutput
from tests.test_duck_floor import DUCK_CLASSIFY, USER_DBFS, frames, speaking, speechlike


def echo_called_false(at: float = 3.5, loud_until: float = 2.2) -> FloorMachine:
    """Turn 1 playing; an echo from 2.0 (above the user's level until `loud_until`) falls with
    our duck and is restored at `at`; the VAD still hears the utterance."""
    m = speaking(DUCK_CLASSIFY)
    m.speech_started(2.2, 2.0)
    acts = frames(m, 2.0, loud_until, USER_DBFS + 6)
    acts += speechlike(m, loud_until, at, USER_DBFS - 9)
    assert acts + m.tick(at) == [RestoreOutput(1, "", 2.2)]
    return m


def test_content_at_the_users_level_over_an_echo_cancels_at_its_words() -> None:
    m = echo_called_false()
    frames(m, 3.5, 4.0, USER_DBFS + 4)
    assert m.transcript(4.0, "eight of", final=False) == [
        DuckOutput(1, 4.0), CancelTurn(1, "barge_in", 4.0)
    ]


def test_the_new_speech_is_dated_no_earlier_than_the_false_call() -> None:
    # words 100 ms after the false call: only 100 ms of speech can be theirs, the content rule
    # (200 ms at the user's level) still waits for the rest
    m = echo_called_false(at=3.5)
    frames(m, 3.5, 3.6, USER_DBFS + 4)
    assert m.transcript(3.6, "eight", final=False) == [DuckOutput(1, 3.6)]
    assert frames(m, 3.6, 3.66, USER_DBFS + 4) == []
    assert frames(m, 3.66, 3.72, USER_DBFS + 4) == [CancelTurn(1, "barge_in", 3.6)]


def test_the_new_overlap_is_judged_on_its_own_frames_not_the_echos() -> None:
    # quiet words over the echo: its frames since are 10 dB below the user, so side talk
    # (the echo's louder frames before the duck, a fifth of all, are not the words' level)
    m = echo_called_false(loud_until=2.6)
    frames(m, 3.5, 4.0, USER_DBFS - 10)
    acts = m.transcript(4.0, "the horizon", final=False)
    acts += frames(m, 4.0, 5.0, USER_DBFS - 10)
    assert acts[0] == DuckOutput(1, 4.0)
    assert not any(isinstance(a, CancelTurn) for a in acts)
    verdict = m.audio.side_talk_verdict if m.audio else None
    assert verdict is not None and verdict.side_talk
    assert verdict.relative_db is not None and verdict.relative_db < -5
