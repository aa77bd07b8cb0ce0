"""`python -m bargein.research.partial_timing`: real pocketsphinx partials on a scenario's
clips, timed from the item's truth onset, beside the scripted first word's end."""

from __future__ import annotations

import json

import pytest

from bargein.research import partial_timing


def test_reports_the_first_real_partial_of_each_speech_item(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert partial_timing.main(["interrupt_short"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["label"] for r in rows] == ["short_stop"]  # the request is not measured
    row = rows[0]
    # cards_005's aligned "eight" ends 210 ms after its onset; pocketsphinx hears it within
    # a few 100 ms pieces of that.
    assert row["scripted_first_word_end_ms"] == 210
    assert 100 <= row["first_partial_ms"] <= 600
    assert row["partials"][0][1].split()[0] == "eight"
    assert "spades" in row["final"]
