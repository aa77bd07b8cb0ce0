"""Ping/pong liveness on the OpenAI Realtime endpoint (issue 16), served by the same hypercorn as
`/ws`: a raw client with the system's receive buffer that never reads is reset and counted,
while the OpenAI SDK's client (`websockets` underneath, which answers pings) streaming speech
on the same server stays connected past the pong timeout and gets its reply."""

from __future__ import annotations

import json
import socket

import trio
import wsproto
from wsproto.events import AcceptConnection, Request, TextMessage

from bargein.testing.realtime import TOKEN, RealtimeClient, ScriptedEngines, drive, speech
from bargein.testing.web import running
from bargein.transports.access import AccessConfig
from bargein.transports.app import DemoServer
from bargein.transports.websocket import ConnectionLimits

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound
QUICK = ConnectionLimits(ping_interval=0.25, pong_timeout=3.0)
SILENCE = json.dumps({"type": "input_audio_buffer.append", "audio": "AAAAAAAA"})


async def never_reading(port: int) -> bool:
    """Upgrade, read the 101, then only send (silence appends) until a send fails: True."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with sock:
        await sock.connect(("127.0.0.1", port))
        ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        request = Request(
            host=f"127.0.0.1:{port}",
            target="/v1/realtime?model=bargein-test",
            extra_headers=[(b"authorization", f"Bearer {TOKEN}".encode())],
        )
        await sock.send(ws.send(request))
        while not any(isinstance(e, AcceptConnection) for e in ws.events()):
            ws.receive_data(await sock.recv(65536))
        frame = ws.send(TextMessage(SILENCE))
        try:
            while True:
                await sock.send(frame)
                await trio.sleep(0.02)
        except OSError:
            return True


async def test_a_never_reading_realtime_client_is_reset_while_the_sdk_client_stays() -> None:
    engines = ScriptedEngines(["go forward ten meters"], ["Okay, going forward."])
    server = DemoServer(engines.factory, access=AccessConfig(token=TOKEN), limits=QUICK)

    def scenario(c: RealtimeClient) -> None:
        c.wait_type("session.created")
        c.stream(speech())  # 3.8 s in real time: longer than the pong timeout
        c.wait_type("response.done")
        assert not c.closed

    reset = False

    async def silent() -> None:
        nonlocal reset
        reset = await never_reading(port)

    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, trio.open_nursery() as nursery:
            nursery.start_soon(silent)
            await drive(port, scenario)
    assert reset
    assert server.realtime.stats.slow_consumers == 1
