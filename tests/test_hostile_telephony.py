"""Hostile carrier streams against the real hypercorn server (docs/telephony.md, *Malformed
carrier messages*): each is refused, counted, and the call goes on."""

from __future__ import annotations

import dataclasses

import trio

from bargein.testing.carrier import call
from bargein.testing.web import running
from bargein.transports.app import DemoServer
from bargein.transports.telephony import EXTENSION, TWILIO, TelephonyServer

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound


async def test_an_empty_binary_frame_is_a_counted_binary_frame_and_the_call_goes_on() -> None:
    # quart delivers an empty binary frame as None, not b"".
    server = DemoServer()
    tel = server.app.extensions[EXTENSION]
    assert isinstance(tel, TelephonyServer)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, call(port, TWILIO) as sim:
            await sim.send_raw(b"")
            await sim.send_raw(b"")
            await sim.stop()
            await sim.closed.wait()
            await tel.wait_idle()
    record = tel.records[-1]
    assert record.end_reason == "stop"  # not an error: the call outlived both frames
    assert dict(record.rejections) == {"binary_frame": 2}
    assert sim.log.closed_code == 1000


def short_silence(server: DemoServer, seconds: float) -> TelephonyServer:
    tel = server.app.extensions[EXTENSION]
    assert isinstance(tel, TelephonyServer)
    tel.limits = dataclasses.replace(tel.limits, silence_timeout=seconds)
    return tel


async def test_a_carrier_that_falls_silent_is_ended_and_its_slot_freed() -> None:
    # A carrier streams media every 20 ms for the whole call (silence too): a stream with no
    # frame at all is gone (a partition, a hostile client) even if no FIN ever arrives.
    server = DemoServer()
    tel = short_silence(server, 1.0)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, call(port, TWILIO) as sim:
            await sim.closed.wait()  # we send nothing after `start`
            await tel.wait_idle()
    assert [r.end_reason for r in tel.records] == ["carrier_silent"]
    assert tel.stats.ended == {"carrier_silent": 1}
    assert sim.log.closed_code == 1011
    assert not tel.calls


async def test_a_carrier_that_keeps_streaming_is_not_silent() -> None:
    server = DemoServer()
    tel = short_silence(server, 1.0)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, call(port, TWILIO) as sim:
            await sim.silence(3.0)  # 3 s of media frames: longer than the timeout
            assert tel.calls
            await sim.stop()
            await sim.closed.wait()
            await tel.wait_idle()
    assert [r.end_reason for r in tel.records] == ["stop"]
