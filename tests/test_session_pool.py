"""`--max-sessions` is one pool per worker for the three voice endpoints (docs/web.md): a `/ws`
session, a phone call and a `/v1/realtime` connection each take a slot, and each endpoint
refuses (`server_busy`, counted) when the others already hold them all."""

from __future__ import annotations

import json
from typing import Any

import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from bargein.testing.carrier import call
from bargein.testing.web import connect, running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import ErrorMessage, SessionStart
from bargein.transports.telephony import EXTENSION, TWILIO, TelephonyServer

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound


async def next_event(ws: WebSocketConnection, kind: str) -> dict[str, Any]:
    while True:
        event = json.loads(await ws.get_message())
        if event["type"] == kind:
            return dict(event)


async def ws_refused(port: int) -> tuple[str, int | None]:
    async with connect(port) as client:
        await client.send(SessionStart(16000))
        error = await client.wait_for(lambda m: isinstance(m, ErrorMessage))
        assert isinstance(error, ErrorMessage) and error.fatal
        await client.wait_closed()
        return error.code, client.close_code


async def realtime_refused(port: int) -> str:
    async with open_websocket_url(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
        return str((await next_event(ws, "error"))["error"]["code"])


async def call_refused(port: int) -> int | None:
    """A Twilio call's close code (1008: refused at its start)."""
    async with call(port, TWILIO) as sim:
        await sim.closed.wait()
    return sim.log.closed_code


def telephony(server: DemoServer) -> TelephonyServer:
    tel = server.app.extensions[EXTENSION]
    assert isinstance(tel, TelephonyServer)
    return tel


async def call_admitted(tel: TelephonyServer) -> None:
    while True:  # polled: the server's count is the verdict
        if tel.calls:
            return
        await trio.sleep(0.02)


async def test_a_realtime_connection_takes_the_slot_of_ws_and_calls() -> None:
    server = DemoServer(max_sessions=1)
    tel = telephony(server)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with open_websocket_url(f"ws://127.0.0.1:{port}/v1/realtime") as held:
                await next_event(held, "session.created")
                assert await ws_refused(port) == ("server_busy", 1013)
                assert await call_refused(port) == 1008
    assert server.sessions.stats.refused == {"server_busy": 1}
    assert tel.stats.refused == {"server_busy": 1}


async def test_a_ws_session_takes_the_slot_of_realtime_and_calls() -> None:
    server = DemoServer(max_sessions=1)
    tel = telephony(server)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000)):
            assert await realtime_refused(port) == "server_busy"
            assert await call_refused(port) == 1008
    assert server.realtime.stats.refused == {"server_busy": 1}
    assert tel.stats.refused == {"server_busy": 1}


async def test_a_call_takes_the_slot_of_ws_and_realtime() -> None:
    server = DemoServer(max_sessions=1)
    tel = telephony(server)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, call(port, TWILIO):
            await call_admitted(tel)
            assert await ws_refused(port) == ("server_busy", 1013)
            assert await realtime_refused(port) == "server_busy"
    assert server.sessions.stats.refused == {"server_busy": 1}
    assert server.realtime.stats.refused == {"server_busy": 1}


async def test_under_the_limit_every_endpoint_is_served_at_once() -> None:
    server = DemoServer(max_sessions=3)
    tel = telephony(server)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000)), call(port, TWILIO):
            await call_admitted(tel)
            async with open_websocket_url(f"ws://127.0.0.1:{port}/v1/realtime") as ws:
                await next_event(ws, "session.created")
                assert server.realtime.active == 1
    assert not server.sessions.stats.refused and not server.realtime.stats.refused
    assert not tel.stats.refused
