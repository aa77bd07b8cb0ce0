"""Close never hangs and the last word still goes out: bounded final flush, shielded clear,
bounded recognizer close; and not one frame of a turn after the decision to stop it (by the
order of events and sends, not by timestamps)."""

from __future__ import annotations

import trio
import trio.testing

from bargein.engines.base import Engines, Recognizer
from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import feed_live, load, place
from bargein.testing.memory import MemoryTransport, OrderedTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedRecognizer, ScriptedStt, ScriptedTts

STORY = "Once upon a time there was a small robot. It lived in a quiet town by the sea."
HOUR = 3600.0


def engines(stt: ScriptedStt | None = None) -> Engines:
    return Engines(stt or ScriptedStt(), ScriptedPlanner([STORY]), ScriptedTts())


async def test_no_frame_after_the_interrupt_not_even_the_one_egress_was_holding(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = OrderedTransport()
    async with open_session(SessionConfig(), engines(), transport) as session:
        transport.watch(session)
        session.push_text("story")
        await trio.sleep(1.01)  # egress sleeps between frames, holding the next one
        session.interrupt()
        await trio.sleep(2)
    barge = transport.of_type(EventType.BARGE_IN)[0]
    assert transport.frames_after(barge) == []
    assert ("clear", 1) in transport.log


async def test_speech_barge_in_sends_no_frame_after_the_decision(
    autojump_clock: trio.testing.MockClock, audio_dir: object
) -> None:
    from bargein.actors.policy import InterruptionPolicy

    transport = OrderedTransport()
    speech = load("pocketsphinx_goforward.raw")
    config = SessionConfig(policy=InterruptionPolicy(mode="onset"))
    async with open_session(config, engines(ScriptedStt(["go", "stop"])), transport) as session:
        transport.watch(session)
        await feed_live(session.push_audio, place(9000, (0, speech), (5000, speech)))
        await trio.sleep(5)
    barge = transport.of_type(EventType.BARGE_IN)[0]
    assert transport.turn_frames(1) and transport.frames_after(barge) == []


async def test_clear_reaches_the_peer_when_the_session_closes_at_the_barge_in(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = OrderedTransport()
    async with open_session(SessionConfig(), engines(), transport) as session:
        transport.watch(session)
        session.bus.add_listener(
            lambda e: session.close("bye") if e.type == EventType.BARGE_IN else None
        )
        session.push_text("story")
        await trio.sleep(1.0)
        session.interrupt()
        await session.wait_ended()
    assert ("clear", 1) in transport.log  # the clear is shielded from the session's close


class SlowEvents(MemoryTransport):
    """Stops taking events after the first few (a peer that no longer reads)."""

    async def send_event(self, event: Event) -> None:
        if len(self.events) >= 3:
            await trio.sleep(HOUR)
        await super().send_event(event)


async def test_close_is_bounded_when_the_transport_stops_taking_events(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = SlowEvents()
    async with open_session(SessionConfig(), engines(), transport) as session:
        session.push_text("story")
        await trio.sleep(1.0)
        closing = trio.current_time()
    assert session.ended
    assert trio.current_time() - closing <= 1.0 + 1e-6  # the final flush gives up after 1 s


class HangingRecognizer(ScriptedRecognizer):
    async def aclose(self) -> None:
        await trio.sleep(HOUR)


class HangingStt(ScriptedStt):
    def recognizer(self) -> Recognizer:
        return HangingRecognizer(self)


async def test_close_is_bounded_when_the_recognizer_close_hangs(
    autojump_clock: trio.testing.MockClock,
) -> None:
    transport = MemoryTransport()
    async with open_session(SessionConfig(), engines(HangingStt()), transport) as session:
        await trio.sleep(0.5)
        closing = trio.current_time()
    assert session.ended
    assert trio.current_time() - closing <= 1.0 + 1e-6  # recognizer close gives up after 1 s
    assert transport.of_type(EventType.SESSION_ENDED)


async def test_trace_is_complete_whatever_instant_the_session_closes(
    autojump_clock: trio.testing.MockClock, tmp_path: object
) -> None:
    import json
    from pathlib import Path

    for yields in range(6):
        path = Path(str(tmp_path)) / f"trace{yields}.jsonl"
        transport = MemoryTransport()
        config = SessionConfig(trace_path=str(path))
        async with open_session(config, engines(), transport) as session:
            await trio.sleep(0.1)
            session.reject("probe")  # an event: the trace writer wakes up …
            for _ in range(yields):
                await trio.lowlevel.checkpoint()
            session.close()  # … and the session closes at some instant of its hand-off
        seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
        assert seqs == list(range(len(seqs))) and len(seqs) >= 3, (yields, seqs)


async def test_interrupt_in_the_instant_a_frame_reaches_egress_sends_nothing_more(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """TTS hands egress a frame and the floor decides in the same instant: egress is woken with
    the frame (not cancelled) and is behind its pacing grid, so it would send without another
    checkpoint. No frame of the turn may be handed over once `interrupt` returned."""
    import numpy as np

    from bargein.actors.egress import AudioStarted, Egress
    from bargein.runtime.bus import EventBus

    transport = MemoryTransport()
    bus = EventBus("s", trio.current_time())
    started_send, started_recv = trio.open_memory_channel[AudioStarted](10)
    egress = Egress(transport, bus, rate=16000, lead_ms=0, buffer_frames=100,
                    on_audio_started=started_send)
    async with trio.open_nursery() as nursery:
        await nursery.start(egress.run)
        frames, _ = egress.open_turn(1)
        for k in (0, 1):  # two frames, then TTS underruns: egress waits for the next one
            frames.send_nowait(OutFrame(1, np.zeros(320, np.int16), 320 * k))
        await trio.sleep(1.0)
        assert len(transport.frames) == 2
        frames.send_nowait(OutFrame(1, np.zeros(320, np.int16), 640))  # wakes egress …
        egress.interrupt(1)  # … and the decision comes before it runs
        await trio.sleep(0.5)
        assert len(transport.frames) == 2
        assert [turn for _, turn in transport.clears] == [1]
        nursery.cancel_scope.cancel()
    started_recv.close()
