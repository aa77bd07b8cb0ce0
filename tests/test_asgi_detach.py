"""After a WebSocket app returns, hypercorn's tasks can no longer wait on the connection's event
queue (websocket/asgi.py, issue 16's CLOSE-WAIT defect), and nothing waits for them: on a
virtual clock no time passes between the app's return and the wrapper's, and the socket is
closed, also at a server stop with several connections open."""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Mapping
from typing import Any

import pytest
import trio
import trio.testing
from hypercorn.config import Config
from hypercorn.trio import serve
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Request, TextMessage

import bargein.transports.app
from bargein.engines.base import Engines
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import Client, connect, running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import OptionValue, SessionStart
from bargein.transports.websocket.asgi import App, drain_after_close

QUEUED = 100  # messages in one TCP segment: far more than hypercorn's 10-event app queue
SETTLE = 0.005  # real seconds every task must have waited: loopback delivery is done by then


def scripted(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner(["ok"]), ScriptedTts(16000))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def handshake(port: int) -> tuple[trio.SocketStream, WSConnection]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host=f"127.0.0.1:{port}", target="/")))
    while True:
        ws.receive_data(await stream.receive_some())
        if any(isinstance(event, AcceptConnection) for event in ws.events()):
            return stream, ws


def reset(stream: trio.SocketStream) -> None:
    """Close with RST (linger 0): the server's next write fails."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.socket.close()


async def test_a_disconnect_that_overtook_queued_messages_leaves_no_fd_and_no_wait(
    loopback_clock: trio.testing.MockClock,
) -> None:
    client_gone = trio.Event()
    returned: list[float] = []
    app_done: list[float] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await client_gone.wait()  # hypercorn's reader waits to put message 11 of QUEUED
        async with trio.open_nursery() as nursery:

            async def read_until_disconnect() -> None:
                while (await receive())["type"] != "websocket.disconnect":
                    pass
                nursery.cancel_scope.cancel()  # as quart does: the app stops reading here

            nursery.start_soon(read_until_disconnect)
            # The write fails (the peer reset): hypercorn's writer puts the disconnect, which
            # overtakes the messages the reader has still to put.
            await send({"type": "websocket.send", "text": "to a peer that is gone"})
            await trio.sleep_forever()
        app_done.append(trio.current_time())

    async def served(scope: Any, receive: Any, send: Any) -> None:
        await drain_after_close(app)(scope, receive, send)
        if scope["type"] == "websocket":
            returned.append(trio.current_time())

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = config.errorlog = None
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(serve, served, config)  # type: ignore[arg-type]
        port = int(urls[0].rsplit(":", 1)[1])
        baseline = open_fds()
        stream, ws = await handshake(port)
        await stream.send_all(b"".join(ws.send(TextMessage(str(i))) for i in range(QUEUED)))
        await trio.testing.wait_all_tasks_blocked(SETTLE)  # the server's reader is stuck putting
        reset(stream)
        client_gone.set()
        await trio.testing.wait_all_tasks_blocked(SETTLE)
        assert app_done and returned == app_done  # returned at once (no virtual time passed)
        assert open_fds() == baseline  # hypercorn's reader got through and closed its socket
        nursery.cancel_scope.cancel()


async def test_a_server_stop_with_open_sockets_waits_for_no_drain_and_every_close_completes(
    loopback_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    app_returned: list[float] = []
    drain_returned: list[float] = []

    def timed_drain(app: App) -> App:  # DemoServer's wrapper, timed on both sides
        async def timed_app(scope: Any, receive: Any, send: Any) -> None:
            try:
                await app(scope, receive, send)
            finally:
                if scope["type"] == "websocket":
                    app_returned.append(trio.current_time())

        drained = drain_after_close(timed_app)

        async def timed(scope: Any, receive: Any, send: Any) -> None:
            await drained(scope, receive, send)
            if scope["type"] == "websocket":
                drain_returned.append(trio.current_time())

        return timed

    monkeypatch.setattr(bargein.transports.app, "drain_after_close", timed_drain)
    server = DemoServer(scripted)
    clients: list[Client] = []

    async def hold(port: int, task_status: trio.TaskStatus[None]) -> None:
        async with connect(port, SessionStart(16000)) as client:
            clients.append(client)
            task_status.started()
            await client.wait_closed()

    async with trio.open_nursery() as nursery:
        async with running(server) as port:
            for _ in range(4):
                await nursery.start(hold, port)
    assert [c.close_code for c in clients] == [1001] * 4  # the server's close, answered
    assert len(app_returned) == 4
    assert drain_returned == app_returned  # each drain returned the instant its app did
