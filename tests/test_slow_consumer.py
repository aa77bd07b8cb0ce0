"""A client that never reads, over a real socket through hypercorn (issue 16): the server sees
its writes stall, closes the TCP connection for real and counts a slow consumer. hypercorn
shields its socket writes, so cancelling a send could never do it."""

from __future__ import annotations

import json
import socket

import trio
import wsproto
from wsproto.events import AcceptConnection, BytesMessage, Request, TextMessage

from bargein.testing.web import running
from bargein.transports.app import DemoServer
from bargein.transports.websocket import ConnectionLimits
from tests.test_lifecycle import long_reply, settled

HANG_GUARD = 30  # seconds; a guard against hangs, never a performance bound


async def never_reading_client(port: int) -> trio.socket.SocketType:
    """Connect with a tiny receive buffer, upgrade, start a session, ask for a long reply, and
    from then on never read. Returns the socket (the caller keeps it open)."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
    await sock.connect(("127.0.0.1", port))
    ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    await sock.send(ws.send(Request(host=f"127.0.0.1:{port}", target="/ws")))
    while not any(isinstance(e, AcceptConnection) for e in ws.events()):
        ws.receive_data(await sock.recv(65536))
    start = {"type": "session.start", "v": 1, "sample_rate": 16000}
    await sock.send(ws.send(TextMessage(json.dumps(start))))
    await sock.send(ws.send(TextMessage(json.dumps({"type": "text", "v": 1, "text": "go"}))))
    # Microphone silence keeps the session busy with input (not idle) while it is not read.
    silence = ws.send(BytesMessage(b"\0\0" * 320))
    for _ in range(10):
        await sock.send(silence)
    return sock


async def test_a_never_reading_client_is_closed_and_counted() -> None:
    # A short stall bound keeps the test quick; the default is in ConnectionLimits.
    server = DemoServer(long_reply, limits=ConnectionLimits(stall_timeout=0.5))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            sock = await never_reading_client(port)
            with sock:
                while not server.sessions.stats.slow_consumers:  # noqa: ASYNC110
                    await trio.sleep(0.05)  # polled: the counter has no event to wait on
                await settled(server, port)  # no server-side socket left open for it
                # The server aborted the connection: the client's next send fails.
                try:
                    for _ in range(100):
                        await sock.send(b"\0" * 1024)
                        await trio.sleep(0.01)
                    reset = False
                except OSError:
                    reset = True
    stats = server.sessions.stats
    assert stats.slow_consumers == 1
    assert not server.sessions.sessions
    assert reset
