"""Cross-component contracts of `Session`: resumed numbering, the latency the user felt
(`speech_end`, `audio_played_first`) and client interrupts that name a turn."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from bargein.engines.base import Engines
from bargein.runtime.events import EventType
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import feed_live, load, place
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

REPLY = "Once upon a time there was a small robot. It lived in a quiet town by the sea."


def engines() -> Engines:
    return Engines(ScriptedStt(["go forward ten meters"]), ScriptedPlanner([REPLY]), ScriptedTts())


async def test_resumed_session_continues_turn_and_seq_numbers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    config = SessionConfig(first_turn=7, first_seq=120)
    async with open_session(config, engines(), transport) as session:
        session.push_text("hello")
        await trio.sleep(10)
    seqs = [e.seq for e in transport.events]
    assert seqs == list(range(120, 120 + len(seqs)))
    assert transport.of_type(EventType.TURN_STARTED)[0].turn == 7
    assert transport.of_type(EventType.TURN_COMPLETED)[0].turn == 7
    with pytest.raises(ValueError):
        SessionConfig(first_turn=0)


async def test_speech_stopped_says_when_the_user_stopped(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    transport = MemoryTransport()
    async with open_session(SessionConfig(), engines(), transport) as session:
        await feed_live(session.push_audio, place(5000, (0, load("pocketsphinx_goforward.raw"))))
    stopped = transport.of_type(EventType.SPEECH_STOPPED)[0]
    d = stopped.data
    # The decision comes a hang-over after the end of the last voiced frame.
    assert stopped.t - d["speech_end"] == pytest.approx(d["media_t"] - d["offset"], abs=1e-4)
    assert d["media_t"] - d["offset"] == pytest.approx(0.48, abs=0.021)  # VadConfig.stop_ms
    # Live input delivered as captured: media time is the session clock here.
    assert d["speech_end"] == pytest.approx(d["offset"], abs=1e-4)
    assert d["speech_end"] < stopped.t


async def test_audio_played_first_is_when_the_peer_began_playing(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    async with open_session(SessionConfig(), engines(), transport) as session:
        session.push_text("hello")
        await trio.sleep(1.0)
        assert session.report_playback(1, 0)  # nothing played yet: no mark
        assert not transport.of_type(EventType.AUDIO_PLAYED_FIRST)
        await trio.sleep(0.01)
        assert session.report_playback(1, 1600)  # 100 ms played
        now = session.bus.now()
        await trio.sleep(0.3)
        assert session.report_playback(1, 6400)
        await trio.sleep(10)
    marks = transport.of_type(EventType.AUDIO_PLAYED_FIRST)
    assert len(marks) == 1 and marks[0].turn == 1
    assert marks[0].data["played_at"] == pytest.approx(now - 0.1, abs=1e-6)


async def test_interrupt_naming_an_old_turn_is_a_counted_no_op(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    async with open_session(SessionConfig(), engines(), transport) as session:
        session.push_text("first")
        await trio.sleep(10)
        session.push_text("second")
        await trio.sleep(1.0)
        assert session.interrupt(turn=1) is False  # the client still showed turn 1
        assert session.interrupt(turn=9) is False  # a turn that never was
        await trio.sleep(0.5)
        assert not transport.of_type(EventType.BARGE_IN)
        assert session.stats()["interrupts_stale"] == 2
        assert session.interrupt(turn=2) is True
        await trio.sleep(0.5)
        cancelled = transport.of_type(EventType.TURN_CANCELLED)
        assert [(e.turn, e.data["reason"]) for e in cancelled] == [(2, "client")]
    ended = transport.of_type(EventType.SESSION_ENDED)[0]
    assert ended.data["interrupts_stale"] == 2


async def test_audio_played_first_is_never_before_the_first_frame_went_out(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # a peer whose clock runs a little fast reports more played than was sent's worth of time
    # since the first frame: the mark is the first frame's send, not before it (the page's
    # latency table showed a "play" of -2 ms)
    transport = MemoryTransport()
    async with open_session(SessionConfig(), engines(), transport) as session:
        session.push_text("hello")
        for _ in range(2000):  # the virtual clock: until the first frame is out, to the ms
            if transport.of_type(EventType.AUDIO_OUT_FIRST):
                break
            await trio.sleep(0.001)
        first_out = transport.of_type(EventType.AUDIO_OUT_FIRST)[0].t
        await trio.sleep(0.05)
        assert session.report_playback(1, 1600)  # 100 ms "played" 50 ms after the first frame
        await trio.sleep(10)
    marks = transport.of_type(EventType.AUDIO_PLAYED_FIRST)
    assert len(marks) == 1 and marks[0].data["played_at"] == pytest.approx(first_out, abs=1e-6)
