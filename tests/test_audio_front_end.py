"""The audio front end (mic framing + VAD in one task, frames to STT in batches) hands the
recognizer each utterance whole: contiguous audio from the pre-roll before the onset up to the
frame on which the VAD decided the offset, no frame lost or repeated at a batch edge."""

from __future__ import annotations

import numpy as np
import trio
import trio.testing

from bargein.engines.base import Engines
from bargein.runtime.events import EventType
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import feed_live, load, place
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import RecordingStt, ScriptedPlanner, ScriptedTts


async def test_each_utterance_reaches_stt_whole_from_preroll_to_offset(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    utterance = load("pocketsphinx_goforward.raw")
    audio = place(9000, (1000, utterance), (5030, utterance))  # onsets off the batch grid
    stt = RecordingStt()
    transport = MemoryTransport()
    config = SessionConfig(stt_preroll_ms=200, stt_batch_ms=100)
    async with open_session(config, Engines(stt, ScriptedPlanner(["Fine."]), ScriptedTts()),
                            transport) as session:
        await feed_live(session.push_audio, audio)
        session.end_input()
        with trio.move_on_after(30):
            await session.wait_ended()
    starts = transport.of_type(EventType.SPEECH_STARTED)
    stops = transport.of_type(EventType.SPEECH_STOPPED)
    assert len(starts) == len(stops) == len(stt.fed) == 2
    for started, stopped, pieces in zip(starts, stops, stt.fed, strict=True):
        fed = np.concatenate(pieces)
        end = round(stopped.data["media_t"] * 16000)  # the frame the offset was decided on
        first = end - len(fed)
        assert first <= round((started.data["onset"] - 0.2) * 16000) + 320  # pre-roll held
        assert np.array_equal(fed, audio[first:end])  # contiguous, nothing lost or repeated
