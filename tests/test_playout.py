"""The playout cursor decides what the user heard, and so what enters the history."""

from __future__ import annotations

from bargein.actors.playout import PlayoutCursor
from bargein.runtime.messages import WordMark


def cursor() -> PlayoutCursor:
    c = PlayoutCursor(turn=1, rate=1000, generated=["One two.", " Three four."])
    c.words = [
        WordMark("One", 0, 100, 0),
        WordMark("two.", 100, 200, 0, True),
        WordMark("Three", 200, 300, 1),
        WordMark("four.", 300, 400, 1, True),
    ]
    return c


def test_heard_is_sent_without_playback_reports() -> None:
    c = cursor()
    c.sent = 250
    assert c.heard_text() == "One two."
    assert c.heard_ms == 250


def test_playback_reports_bound_what_was_heard_and_never_go_back() -> None:
    c = cursor()
    c.sent = 350
    c.on_played(150)
    assert c.heard_text() == "One"
    c.on_played(120)  # late, out-of-order report
    assert c.heard_samples == 150
    c.on_played(10_000)  # cannot have played more than was sent
    assert c.heard_samples == 350


def test_commit_modes() -> None:
    c = cursor()
    c.sent = 300
    assert c.committed_text("heard_words") == "One two. Three" == c.heard_text()
    assert c.committed_text("heard_sentences") == "One two."
    assert c.committed_text("generated") == "One two. Three four."


def test_a_whole_turn_commits_exactly_what_was_heard() -> None:
    c = cursor()
    c.sent = 400
    c.on_played(399)  # the last report lags the last sample: the last word is not yet heard
    assert c.committed_text("heard_words") == c.heard_text() == "One two. Three"
    c.on_played(400)
    assert c.committed_text("heard_words") == c.heard_text() == "One two. Three four."
    assert c.committed_text("heard_sentences") == "One two. Three four."
