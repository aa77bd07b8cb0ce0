"""The local planner answers any arithmetic it parses; no input makes it raise (a raise would
end the turn with no reply)."""

from __future__ import annotations

import pytest

from bargein.engines.embedded.local_planner import LocalPlanner
from bargein.runtime.history import ChatMessage


def reply(text: str) -> str:
    return LocalPlanner().reply([ChatMessage("user", text)])


@pytest.mark.parametrize(
    ("said", "answer"),
    [
        ("what is 100000 to the power of 64", "100000 to the power of 64 is too big for me."),
        ("what is 10 to the power of 400", "10 to the power of 400 is too big for me."),
        ("what is 0 to the power of 0.5", "0 to the power of 0.5 is 0."),
        ("what is 2 to the power of 10", "2 to the power of 10 is 1024."),
        ("what is 10 times 10 to the power of 300 times 10 to the power of 300",
         "10 times 10 to the power of 300 times 10 to the power of 300 is too big for me."),
    ],
)
def test_huge_or_undefined_arithmetic_is_worded_not_raised(said: str, answer: str) -> None:
    assert reply(said) == answer
