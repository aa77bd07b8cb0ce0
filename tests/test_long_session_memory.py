"""A session held for many turns keeps a bounded amount of memory (issue 16's 200-session hold).

Turns in one session on the virtual clock, with the engines `bargein bench load` serves; what
the session still holds is measured with tracemalloc (bytes allocated by bargein's own code and
still alive), between two points many turns apart — not wall time. Found: the history grew
by every message for the session's life, and the scripted planner and TTS kept every request
(each with its own window of the history: quadratic) and every sentence.
"""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import numpy as np
import trio
import trio.testing

import bargein
from bargein.benchmarks.load import _scripted_factory
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import History
from bargein.runtime.messages import OutFrame
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import feed_live, load, silence

PACKAGE = str(Path(bargein.__file__).parent)


class Discard:
    """A transport that keeps nothing (a test's MemoryTransport would be what grows)."""

    async def send_audio(self, frame: OutFrame) -> None:
        await trio.lowlevel.checkpoint()

    async def send_clear(self, turn: int) -> None:
        await trio.lowlevel.checkpoint()

    async def send_event(self, event: Event) -> None:
        await trio.lowlevel.checkpoint()


def retained(snapshot: tracemalloc.Snapshot) -> int:
    """Bytes still allocated by bargein's own code."""
    ours = snapshot.filter_traces([tracemalloc.Filter(True, f"{PACKAGE}/*")])
    return sum(stat.size for stat in ours.statistics("filename"))


async def test_many_turns_in_one_session_hold_a_bounded_amount(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    utterance = np.concatenate([load("pocketsphinx_goforward.raw"), silence(1500)])
    engines = _scripted_factory({})
    turns = 0

    def count(event: Event) -> None:
        nonlocal turns
        turns += event.type is EventType.TURN_COMPLETED

    sizes: dict[int, int] = {}
    config = SessionConfig(history_chars=400)  # keeps 800 characters: ~16 turns of history
    async with open_session(config, engines, Discard()) as session:
        session.bus.add_listener(count)
        tracemalloc.start(1)
        try:
            for i in range(1, 41):
                await feed_live(session.push_audio, utterance)
                if i in (15, 40):
                    gc.collect()
                    sizes[i] = retained(tracemalloc.take_snapshot())
        finally:
            tracemalloc.stop()
        messages = session.messages
    assert turns >= 39  # every utterance was answered
    kept = sum(len(m.content) for m in messages if m.role != "system")
    assert kept <= 2 * 400 < 40 * len("go forward ten metersGoing forward ten meters now.")
    # 25 turns later: < 100 bytes per turn (measured: -2.6 KB in all; the doubles' records
    # alone were +7.3 KB, the unbounded history ~200 bytes a turn).
    assert sizes[40] - sizes[15] < 25 * 100, sizes


def test_history_keeps_what_the_window_would_send() -> None:
    bounded, full = History("be brief", keep_chars=25), History("be brief")
    for i in range(12):
        for h in (bounded, full):
            h.add_user(f"question {i}")  # 10 characters
            h.add_assistant(f"answer {i}", interrupted=i == 3)
        assert bounded.window(25) == full.window(25)
    kept = bounded.messages()
    assert kept[0].content == "be brief"
    assert [m.content for m in kept[1:]] == ["question 11", "answer 11"]  # 20 of 25 chars


def test_the_newest_message_stays_even_over_the_bound() -> None:
    history = History(keep_chars=5)
    history.add_user("a long question")
    assert [m.content for m in history.messages()] == ["a long question"]
    history.add_assistant("ok", interrupted=False)
    assert [m.content for m in history.messages()] == ["ok"]
