"""`converse` (what `bargein run` runs) waits for a session that closed itself without a
deadline over its shutdown: on the virtual clock a deadline there is the next one the clock
jumps to while the shutdown waits for real work, and the session ended `drain_s` late (found
2 December 2026: `bargein run` printed 128.320 s for an 8.3 s file)."""

from __future__ import annotations

import time

import trio
import trio.testing

from bargein.engines.base import Engines, Recognizer
from bargein.filerun import converse
from bargein.runtime.events import EventType
from bargein.session import SessionConfig
from bargein.testing.audio import load, place
from bargein.testing.scripted import ScriptedPlanner, ScriptedRecognizer, ScriptedStt, ScriptedTts


class SlowCloseStt(ScriptedStt):
    """Its recognizer's close waits for real work that must finish (shielded, as the CPU
    worker's reply is: `runtime.compute`)."""

    def recognizer(self) -> Recognizer:
        class SlowClose(ScriptedRecognizer):
            async def aclose(self) -> None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(time.sleep, 0.05)

        return SlowClose(self)


def test_a_session_that_closes_itself_ends_when_its_shutdown_does() -> None:
    pcm = place(4000, (0, load("pocketsphinx_goforward.raw")))
    engines = Engines(
        SlowCloseStt(default="go forward"), ScriptedPlanner(["Going."]), ScriptedTts()
    )

    async def main() -> float:
        conv = await converse(pcm, 16000, engines, SessionConfig(compute="inline"), drain_s=120.0)
        ended = [e for e in conv.events if e.type == EventType.SESSION_ENDED]
        completed = [e for e in conv.events if e.type == EventType.TURN_COMPLETED]
        assert conv.end_reason == "input_ended" and len(ended) == 1 and completed
        return ended[0].t

    ended = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    input_s = len(pcm) / 16000
    # The STT's close is bounded by 1 s of session time (its own bound, which the shield
    # outlasts); nothing may stretch it to the drain bound (120 s after the input's 4 s).
    assert ended <= input_s + 1.5, (input_s, ended)
