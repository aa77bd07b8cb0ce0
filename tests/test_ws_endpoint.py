"""`/ws` as a bare ASGI endpoint (bargein/transports/websocket/endpoint.py): the adapter over
a stand-in ASGI server (in-memory channels), then real hypercorn on 127.0.0.1: the session is
served by it, and the socket under it is still found (slow-consumer abort, liveness)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import trio
import trio.testing

from bargein.engines.base import Engines
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import connect, running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import SessionStart, SessionStarted
from bargein.transports.websocket.endpoint import AsgiWebSocket, PeerGone, route_websocket
from bargein.transports.websocket.tcp import connection_socket

HANG_GUARD = 30  # seconds; a guard against hangs, never a performance bound

Event = dict[str, Any]


def ws_scope(path: str = "/ws", **extra: Any) -> dict[str, Any]:
    return {"type": "websocket", "path": path, "root_path": "", "headers": [], **extra}


class FakeServer:
    """What hypercorn gives an ASGI app: `receive` from a channel the test feeds, `send`
    recorded."""

    def __init__(self) -> None:
        self.to_app, self._from_server = trio.open_memory_channel[Event](10)
        self.sent: list[Event] = []

    async def receive(self) -> Event:
        return await self._from_server.receive()

    async def send(self, message: Event) -> None:
        self.sent.append(dict(message))


async def not_routed(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError(f"{scope['type']} {scope['path']} reached the app behind")


async def run_routed(
    handler: Callable[[AsgiWebSocket], Awaitable[None]],
    events: list[Event],
    scope: dict[str, Any] | None = None,
) -> FakeServer:
    server = FakeServer()
    for event in events:
        server.to_app.send_nowait(event)
    app = route_websocket("/ws", handler, not_routed)
    await app(scope or ws_scope(), server.receive, server.send)
    return server


CONNECT: Event = {"type": "websocket.connect"}
DISCONNECT: Event = {"type": "websocket.disconnect", "code": 1006}


def receive_event(data: str | bytes) -> Event:
    if isinstance(data, bytes):
        return {"type": "websocket.receive", "bytes": data, "text": None}
    return {"type": "websocket.receive", "bytes": None, "text": data}


async def test_frames_reach_the_handler_as_sent_and_a_returning_handler_closes_1000() -> None:
    got: list[str | bytes] = []

    async def handler(ws: AsgiWebSocket) -> None:
        await ws.accept(subprotocol="bargein.v1")
        for _ in range(3):
            got.append(await ws.receive())
        await ws.send(b"\x01\x02")
        await ws.send("{}")

    frames: list[str | bytes] = [b"\x00\x01", "hello", b""]
    server = await run_routed(handler, [CONNECT, *map(receive_event, frames)])
    assert got == frames  # an empty binary frame stays b"" (the codec rejects it, counted)
    assert server.sent == [
        {"type": "websocket.accept", "subprotocol": "bargein.v1", "headers": []},
        {"type": "websocket.send", "bytes": b"\x01\x02"},
        {"type": "websocket.send", "text": "{}"},
        {"type": "websocket.close", "code": 1000, "reason": ""},
    ]


async def test_a_disconnect_cancels_the_handler_and_nothing_more_is_sent() -> None:
    seen: list[str] = []

    async def handler(ws: AsgiWebSocket) -> None:
        await ws.accept()
        try:
            while True:
                await ws.receive()
                seen.append("frame")
        except trio.Cancelled:  # as quart cancels its handler: the session's tasks end with it
            seen.append("cancelled")
            raise
        seen.append("after the loop")  # never: the disconnect cancels, it does not return

    server = await run_routed(handler, [CONNECT, receive_event(b"\x00\x00"), DISCONNECT])
    assert seen == ["frame", "cancelled"]
    assert [m["type"] for m in server.sent] == ["websocket.accept"]  # no close after a disconnect


async def test_a_receive_after_the_disconnect_raises_instead_of_waiting_forever(
    autojump_clock: trio.testing.MockClock,
) -> None:
    errors: list[str] = []

    async def handler(ws: AsgiWebSocket) -> None:
        await ws.accept()
        # A shielded cleanup that reads must not hang (the guard is inside the shield; on the
        # autojump clock a receive that waits for ever trips it at once).
        with trio.CancelScope(shield=True), trio.move_on_after(HANG_GUARD):
            for _ in range(2):
                try:
                    await ws.receive()
                except PeerGone as exc:
                    errors.append(str(exc))

    await run_routed(handler, [CONNECT, DISCONNECT])
    assert errors == ["the peer disconnected"] * 2


async def test_a_failing_handler_is_logged_with_its_traceback_and_closed_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def handler(ws: AsgiWebSocket) -> None:
        await ws.accept()
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="bargein.transports"):
        server = await run_routed(handler, [CONNECT])
    assert server.sent[-1] == {"type": "websocket.close", "code": 1011, "reason": ""}
    [record] = [r for r in caplog.records if "websocket /ws failed" in r.getMessage()]
    assert record.exc_info is not None and "boom" in str(record.exc_info[1])


@pytest.mark.parametrize(
    "scope",
    [
        {"type": "http", "path": "/ws", "root_path": "", "headers": []},
        ws_scope("/v1/realtime"),
        ws_scope("/ws/"),
        ws_scope("/ws", root_path="/app"),  # under a root path the endpoint is /app/ws
    ],
)
async def test_other_scopes_go_to_the_app_behind(scope: dict[str, Any]) -> None:
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])

    async def handler(ws: AsgiWebSocket) -> None:
        raise AssertionError("routed to the endpoint")

    await route_websocket("/ws", handler, app)(scope, FakeServer().receive, FakeServer().send)
    assert reached == [scope["path"]]


async def test_the_endpoint_under_a_root_path() -> None:
    served: list[str] = []

    async def handler(ws: AsgiWebSocket) -> None:
        served.append(ws.scope["path"])

    await run_routed(handler, [CONNECT], ws_scope("/app/ws", root_path="/app"))
    assert served == ["/app/ws"]


def test_headers_subprotocols_and_the_peer_address() -> None:
    scope = ws_scope(
        headers=[(b"host", b"example.test"), (b"Origin", b"http://a"), (b"origin", b"http://b")],
        subprotocols=["bargein.v1", "bargein.token.x"],
        client=("10.0.0.7", 5555),
    )
    ws = AsgiWebSocket(scope, FakeServer().receive, FakeServer().send)
    assert ws.headers.get("Host") == "example.test"
    assert ws.headers.get("ORIGIN") == "http://a"  # the first value, as werkzeug's get
    assert ws.headers.get("Authorization") is None
    assert ws.requested_subprotocols == ["bargein.v1", "bargein.token.x"]
    assert ws.remote_addr == "10.0.0.7"
    assert AsgiWebSocket(ws_scope(), FakeServer().receive, FakeServer().send).remote_addr == (
        "<local>"
    )


# -- real hypercorn -------------------------------------------------------------------------


def scripted(_: object) -> Engines:
    return Engines(
        stt=ScriptedStt(default="go forward"),
        planner=ScriptedPlanner(["Going."]),
        tts=ScriptedTts(16000, ms_per_char=10.0),
    )


async def test_ws_sessions_are_served_by_the_bare_endpoint_over_the_real_socket() -> None:
    server = DemoServer(scripted)
    served: list[tuple[str, bool]] = []
    handle = server.sessions.handle

    async def spy(ws: Any, *, authorized: bool = False) -> None:
        sock = connection_socket(ws)
        served.append((type(ws).__name__, isinstance(sock, trio.socket.SocketType)))
        await handle(ws, authorized=authorized)

    server.sessions.handle = spy  # type: ignore[method-assign]
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, SessionStart(16000)) as client:
                assert client.of(SessionStarted)
    # The session reads hypercorn's events itself, and the socket under it (the slow-consumer
    # abort, liveness) is found through the endpoint's send callable.
    assert served == [("AsgiWebSocket", True)]


# -- frames taken in the server's reader task -----------------------------------------------


class HypercornLike(FakeServer):
    """As hypercorn's WSStream: the app's `receive` is its channel's, and it puts each event
    with `app_put` (looked up for every event), which is what `read_inline` replaces."""

    def __init__(self) -> None:
        super().__init__()
        self.app_put = self.to_app.send
        self.receive = self._from_server.receive  # type: ignore[method-assign]


async def inline_reader(
    server: FakeServer, take: Callable[[str | bytes], bool], results: list[object]
) -> Callable[[], Awaitable[None]]:
    """Serve one connection whose handler reads inline; returns what runs it."""

    async def handler(ws: AsgiWebSocket) -> None:
        await ws.accept()
        try:
            results.append(await ws.read_inline(take))
        except trio.Cancelled:
            results.append("cancelled")
            raise
        except Exception as exc:
            results.append(exc)
        results.append(await ws.receive())  # what queued after `take` said stop

    app = route_websocket("/ws", handler, not_routed)

    async def run() -> None:
        await app(ws_scope(), server.receive, server.send)

    return run


async def test_inline_frames_reach_take_in_order_as_the_server_puts_them() -> None:
    server = HypercornLike()
    got: list[str | bytes] = []
    results: list[object] = []

    def take(frame: str | bytes) -> bool:
        got.append(frame)
        return frame != "stop"

    for event in (CONNECT, receive_event(b"\x01\x00"), receive_event("queued")):
        server.to_app.send_nowait(event)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(await inline_reader(server, take, results))
        await trio.testing.wait_all_tasks_blocked()
        assert got == [b"\x01\x00", "queued"]  # what queued before comes first
        await server.app_put(receive_event(b"\x02\x00"))
        assert got[-1] == b"\x02\x00"  # taken within the server's put: no hop, no wait
        await server.app_put(receive_event("stop"))
        await server.app_put(receive_event("after"))  # queues for `receive` again
    assert got == [b"\x01\x00", "queued", b"\x02\x00", "stop"]
    assert results == [True, "after"]


async def test_a_disconnect_while_reading_inline_cancels_the_handler() -> None:
    server = HypercornLike()
    results: list[object] = []
    server.to_app.send_nowait(CONNECT)
    with trio.fail_after(HANG_GUARD):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(await inline_reader(server, lambda _: True, results))
            await trio.testing.wait_all_tasks_blocked()
            await server.app_put(DISCONNECT)
    assert results == ["cancelled"]
    assert [m["type"] for m in server.sent] == ["websocket.accept"]


async def test_a_disconnect_already_queued_cancels_the_handler() -> None:
    server = HypercornLike()
    results: list[object] = []
    for event in (CONNECT, receive_event(b"\x00\x00"), DISCONNECT):
        server.to_app.send_nowait(event)
    with trio.fail_after(HANG_GUARD):
        await (await inline_reader(server, lambda _: True, results))()
    assert results == ["cancelled"]


async def test_a_take_that_raises_fails_the_handler_not_the_server() -> None:
    server = HypercornLike()
    results: list[object] = []

    def take(frame: str | bytes) -> bool:
        raise ValueError("bad take")

    server.to_app.send_nowait(CONNECT)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(await inline_reader(server, take, results))
        await trio.testing.wait_all_tasks_blocked()
        await server.app_put(receive_event(b"\x00\x00"))  # the server's put does not raise
        await server.app_put(receive_event("next"))
    assert isinstance(results[0], ValueError) and results[1] == "next"


async def test_without_hypercorn_read_inline_does_nothing() -> None:
    results: list[object] = []
    server = FakeServer()  # no app_put, no channel receive: a test double, another server
    for event in (CONNECT, receive_event("queued")):
        server.to_app.send_nowait(event)
    await (await inline_reader(server, lambda _: True, results))()
    assert results == [False, "queued"]
