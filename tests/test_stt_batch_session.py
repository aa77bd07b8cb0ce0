"""The session feeds the recognizer in batches of `stt_batch_ms` (the classifier presets' 40 ms
brings a word's partial to the floor sooner): every feed of an utterance after its pre-roll is
one batch of audio, and the utterance still arrives whole."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing

from bargein.engines.base import Engines
from bargein.presets import preset
from bargein.runtime.messages import Int16Array
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import feed_live, load, place
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import RecordingStt, ScriptedPlanner, ScriptedTts


async def fed_sizes(config: SessionConfig) -> tuple[list[int], Int16Array]:
    utterance = load("pocketsphinx_goforward.raw")
    audio = place(5000, (1030, utterance))
    stt = RecordingStt()
    engines = Engines(stt, ScriptedPlanner(["Fine."]), ScriptedTts())
    async with open_session(config, engines, MemoryTransport()) as session:
        await feed_live(session.push_audio, audio)
        session.end_input()
        with trio.move_on_after(30):
            await session.wait_ended()
    assert len(stt.fed) == 1
    pieces = stt.fed[0]
    return [len(p) for p in pieces], np.concatenate(pieces)


@pytest.mark.parametrize(
    "config",
    [SessionConfig(stt_batch_ms=100), preset("duck_classify").apply(SessionConfig())],
    ids=["default-100", "duck_classify-40"],
)
async def test_the_recognizer_is_fed_one_batch_at_a_time(
    config: SessionConfig, autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    sizes, fed = await fed_sizes(config)
    batch = 16 * config.stt_batch_ms
    # The first feed holds the pre-roll and the VAD's decision lag with its batch; the last
    # ends at the offset's frame; every one between is exactly one batch.
    assert sizes[0] > batch
    assert set(sizes[1:-1]) == {batch}
    assert 0 < sizes[-1] <= batch
    # the whole of "go forward ten meters" (2.8 s; contiguity: tests/test_audio_front_end.py)
    assert len(fed) > 2 * 16000
