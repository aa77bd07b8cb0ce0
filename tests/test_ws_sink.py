"""Data frames the fast parser takes go straight to the session (`FastFrames.sink`, set by
`AsgiWebSocket.read_inline`), skipping hypercorn's events: the same frames, in order, intact,
with control frames still answered by hypercorn and the frames after a stop queued for
`receive` again. Over real hypercorn on 127.0.0.1 with our raw client (coalesced writes of
many frames in one TCP segment, a ping in the middle)."""

from __future__ import annotations

import os
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, Ping, TextMessage

from bargein.benchmarks.raw_websocket import (
    OP_BINARY,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawWebSocket,
    client_frame,
)
from bargein.transports.websocket.endpoint import AsgiWebSocket, _fast_frames, route_websocket
from bargein.transports.websocket.frames import FastFrames
from bargein.transports.websocket.tcp import server_objects

HANG_GUARD = 30  # seconds; a guard against hangs, never a performance bound


def test_a_sink_takes_the_data_frames_and_control_frames_stay_events() -> None:
    fast = FastFrames(Connection(ConnectionType.SERVER))
    taken: list[bytes | str] = []

    def sink(data: bytes | str) -> bool:
        taken.append(data)
        return data != "stop"

    fast.sink = sink
    payloads = [os.urandom(640) for _ in range(3)]
    wire = b"".join(client_frame(OP_BINARY, p) for p in payloads[:2])
    wire += client_frame(OP_PING, b"hi") + client_frame(OP_BINARY, payloads[2])
    wire += client_frame(OP_TEXT, b"stop") + client_frame(OP_TEXT, b"after")
    fast.receive_data(wire)
    events = list(fast.events())
    assert taken == [*payloads, "stop"]
    assert [type(e) for e in events] == [Ping, TextMessage]
    assert isinstance(events[1], TextMessage) and events[1].data == "after"
    assert fast.sink is None and fast.fast_frames == 6 - 1  # the ping went to wsproto
    fast.receive_data(client_frame(OP_BINARY, b"x"))
    assert [type(e) for e in fast.events()] == [BytesMessage]


async def test_frames_reach_read_inline_in_order_through_the_sink_over_hypercorn() -> None:
    got: list[bytes | str] = []
    via_sink: list[bool] = []
    after: list[bytes | str] = []

    async def handler(ws: AsgiWebSocket) -> None:
        await ws.accept()
        stream = next(o for o in server_objects(ws) if hasattr(o, "app_put"))

        def take(data: bytes | str) -> bool:
            fast = _fast_frames(stream)
            via_sink.append(fast is not None and fast.sink is not None)
            got.append(data)
            return data != "stop"

        assert await ws.read_inline(take)
        after.append(await ws.receive())
        await ws.send("done")

    async def not_routed(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not routed")

    config = Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    frames = [i.to_bytes(4, "big") + os.urandom(636) for i in range(300)]
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            app = route_websocket("/ws", handler, not_routed)
            urls = await nursery.start(
                lambda task_status: serve(app, config, task_status=task_status)
            )
            port = int(urls[0].rsplit(":", 1)[1])
            ws = await RawWebSocket.connect("127.0.0.1", port, "/ws")
            nursery.start_soon(ws.run_writer)
            await trio.sleep(0.1)  # read_inline is waiting
            # Many frames in one write (one TCP segment or a few), a ping among them.
            wire = [client_frame(OP_BINARY, f) for f in frames[:150]]
            wire += [client_frame(OP_PING, b"p")]
            wire += [client_frame(OP_BINARY, f) for f in frames[150:]]
            ws.write(b"".join(wire))
            ws.write(client_frame(OP_TEXT, b"stop") + client_frame(OP_TEXT, b"queued"))
            replies: list[tuple[int, bytes]] = []
            while (OP_TEXT, b"done") not in replies:
                replies += await ws.receive()
            await ws.aclose()
            nursery.cancel_scope.cancel()
    assert got == [*frames, "stop"]
    assert all(via_sink[1:])  # past the first frames (which may have queued before) the sink
    assert after == ["queued"]
    assert (OP_PONG, b"p") in replies
