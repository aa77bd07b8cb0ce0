"""Hostile carrier streams against the real hypercorn server (docs/telephony.md, *Malformed
carrier messages*): each is refused, counted, and the call goes on."""

from __future__ import annotations

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
