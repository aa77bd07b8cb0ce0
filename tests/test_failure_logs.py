"""Every failure a session catches is logged: one line of JSON with the traceback, nothing else."""

from __future__ import annotations

import json
import logging

import pytest
import trio
import trio.testing

from bargein.engines.base import Engines
from bargein.runtime.messages import OutFrame
from bargein.session import SessionConfig, open_session
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

SECRET_REPLY = "The launch code is swordfish and nobody may know it."


class Exploding(MemoryTransport):
    async def send_audio(self, frame: OutFrame) -> None:
        raise ConnectionResetError("peer went away")


def lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    out = []
    for r in caplog.records:
        if r.name == "bargein.session":
            text = r.getMessage()
            assert "\n" not in text  # one line per event
            out.append(json.loads(text))
    return out


async def test_an_actor_failure_is_logged_with_its_traceback_on_one_line(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bargein.session")
    eng = Engines(ScriptedStt(), ScriptedPlanner([SECRET_REPLY]), ScriptedTts())
    async with open_session(SessionConfig(session_id="s1"), eng, Exploding()) as session:
        session.push_text("hello")
        await session.wait_ended()
    [line] = lines(caplog)
    assert line["event"] == "actor_failed" and line["session"] == "s1"
    assert (line["source"], line["error"]) == ("egress", "ConnectionResetError")
    assert line["fatal"] is True
    assert line["message"] == "peer went away"
    frames = line["traceback"]
    assert isinstance(frames, list) and any("egress.py" in f and "_pace" in f for f in frames)
    assert "swordfish" not in caplog.text  # no reply text, no audio


async def test_an_engine_failure_inside_a_turn_is_logged_as_a_warning(
    autojump_clock: trio.testing.MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bargein.session")
    eng = Engines(
        ScriptedStt(), ScriptedPlanner([SECRET_REPLY], fail_after_tokens=3), ScriptedTts()
    )
    async with open_session(SessionConfig(), eng, MemoryTransport()) as session:
        session.push_text("hello")
        await trio.sleep(10)
    [line] = lines(caplog)
    assert (line["event"], line["source"], line["turn"]) == ("engine_failed", "planner", 1)
    assert [r.levelname for r in caplog.records if r.name == "bargein.session"] == ["WARNING"]
    frames = line["traceback"]
    assert isinstance(frames, list) and any("scripted.py" in f for f in frames)
    assert "swordfish" not in caplog.text
