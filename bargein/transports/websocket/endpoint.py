"""A WebSocket served as a bare ASGI endpoint: the session reads the server's events itself.

Through quart every uplink frame took two more hops before the session saw it — hypercorn's
channel, quart's reader task (and a signal), quart's own 10-slot channel, then the handler —
and every downlink frame passed quart's wrapper and a signal. `route_websocket` hands the
WebSocket scopes of one path to a handler with an `AsgiWebSocket` instead: `receive` awaits
hypercorn's channel directly (one hop per frame), `send` calls hypercorn's ASGI send; every
other scope goes to the app behind it (quart). The ASGI send callable is kept as `_send`, as
quart's websocket keeps its own, so `tcp.server_objects` reaches hypercorn's WSStream and the
socket under it the same way (slow-consumer abort, liveness).

As under quart, a disconnect ends the handler: the `receive` that gets it cancels the
handler's scope (cleanup that is shielded still runs); a `receive` after that raises
`PeerGone`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import trio

from bargein.transports.websocket.asgi import App
from bargein.transports.websocket.frames import FastFrames, speed_up
from bargein.transports.websocket.tcp import server_objects
from bargein.transports.websocket.transport import WebSocketLike

log = logging.getLogger("bargein.transports")

Handler = Callable[["AsgiWebSocket"], Awaitable[None]]
# Close codes (RFC 6455): a handler that returns without closing, one that failed.
NORMAL_CLOSURE = 1000
INTERNAL_ERROR = 1011


class PeerGone(Exception):
    """The peer disconnected (a `receive` after the disconnect was delivered)."""


class Headers:
    """Request headers by case-insensitive name; `get` gives the first value, as werkzeug's."""

    def __init__(self, raw: Any) -> None:
        self._first: dict[str, str] = {}
        for name, value in raw or ():
            self._first.setdefault(
                bytes(name).decode("latin1").lower(), bytes(value).decode("latin1")
            )

    def get(self, name: str, default: str | None = None) -> str | None:
        return self._first.get(name.lower(), default)


class HeaderLookup(Protocol):
    def get(self, name: str) -> str | None: ...


class VoiceSocket(WebSocketLike, Protocol):
    """What the `/ws` handler needs of a WebSocket: `AsgiWebSocket`, or quart's websocket."""

    @property
    def headers(self) -> HeaderLookup: ...

    @property
    def requested_subprotocols(self) -> list[str]: ...

    async def accept(self, subprotocol: str | None = None) -> None: ...


class AsgiWebSocket:
    """quart's websocket methods (`accept`, `receive`, `send`, `close`, `headers`,
    `requested_subprotocols`, `remote_addr`) over one ASGI WebSocket scope."""

    def __init__(
        self,
        scope: Mapping[str, Any],
        receive: Callable[[], Awaitable[Mapping[str, Any]]],
        send: Callable[[Mapping[str, Any]], Awaitable[None]],
    ) -> None:
        self.scope = scope
        self.headers = Headers(scope.get("headers"))
        self.requested_subprotocols: list[str] = list(scope.get("subprotocols") or ())
        client = scope.get("client")
        self.remote_addr: str = str(client[0]) if client else "<local>"
        self._receive = receive
        self._send = send  # the server's ASGI send: tcp.server_objects follows it
        # Cancelled when the peer disconnects (the handler runs inside it).
        self.cancel_scope = trio.CancelScope()
        self.accepted = False
        self.closed = False
        self.gone = False

    async def accept(self, subprotocol: str | None = None) -> None:
        if not self.accepted:
            self.accepted = True
            await self._send(
                {"type": "websocket.accept", "subprotocol": subprotocol, "headers": []}
            )
            speed_up(self)  # hypercorn's frame parser, bypassed for the common frames

    async def receive(self) -> str | bytes:
        while not self.gone:
            event = await self._receive()
            kind = event["type"]
            if kind == "websocket.receive":
                data = event.get("bytes")
                return data if data is not None else str(event.get("text") or "")
            if kind == "websocket.disconnect":
                self._peer_gone()
                await trio.lowlevel.checkpoint()  # raises Cancelled unless shielded
            # "websocket.connect" (the first event) carries nothing for the handler.
        raise PeerGone("the peer disconnected")

    async def read_inline(self, take: Callable[[str | bytes], bool]) -> bool:
        """Hand every frame to `take` as the server parses it, in the server's own reader task
        (no channel, no task switch per frame; frames the fast parser takes skip hypercorn's
        events too: its `sink`), until `take` returns False; frames then queue for `receive`
        again, as they do when this returns by cancellation. Frames that queued before come
        first, in order. A disconnect cancels the handler, as in `receive`. False at once
        (nothing done) when the server is not hypercorn; `take` must not block."""
        stream = next((o for o in server_objects(self) if hasattr(o, "app_put")), None)
        channel = getattr(self._receive, "__self__", None)
        if stream is None or not isinstance(channel, trio.MemoryReceiveChannel):
            return False
        original = stream.app_put
        done = trio.Event()
        failed: list[Exception] = []

        def take_data(data: str | bytes) -> bool:
            if done.is_set():
                return False
            try:
                more = take(data)
            except Exception as exc:  # raised in our task, not in the server's
                failed.append(exc)
                more = False
            if not more:
                done.set()
            return more

        def deliver(event: Mapping[str, Any]) -> None:
            if event["type"] == "websocket.disconnect":
                self._peer_gone()
                done.set()
            elif event["type"] == "websocket.receive":
                data = event.get("bytes")
                take_data(data if data is not None else str(event.get("text") or ""))

        async def put(event: Mapping[str, Any]) -> None:
            if done.is_set():
                await original(event)
            else:
                deliver(event)

        while not done.is_set():
            try:
                deliver(channel.receive_nowait())
            except trio.WouldBlock:
                break
        fast = _fast_frames(stream)
        if not done.is_set():
            stream.app_put = put
            if fast is not None:
                fast.sink = take_data
        try:
            await done.wait()
        finally:
            stream.app_put = original
            if fast is not None:
                fast.sink = None
        if self.gone:
            await trio.lowlevel.checkpoint()  # cancelled
            raise PeerGone("the peer disconnected")
        if failed:
            raise failed[0]
        return True

    def _peer_gone(self) -> None:
        self.gone = True
        self.cancel_scope.cancel()

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            await self._send({"type": "websocket.send", "text": data})
        else:
            await self._send({"type": "websocket.send", "bytes": data})

    async def close(self, code: int, reason: str = "") -> None:
        if self.closed:
            return
        self.closed = True
        await self._send({"type": "websocket.close", "code": code, "reason": reason})


def _fast_frames(stream: object) -> FastFrames | None:
    """The `FastFrames` in the chain of wrappers over `stream`'s wsproto connection."""
    connection = getattr(stream, "connection", None)
    for _ in range(4):  # FastFrames under liveness' pong tap
        if connection is None or isinstance(connection, FastFrames):
            return connection
        connection = getattr(connection, "_connection", None)
    return None


def route_websocket(path: str, handler: Handler, app: App) -> App:
    """An ASGI app that serves WebSocket scopes for `path` (under the scope's `root_path`)
    with `handler`, and hands everything else to `app`. A handler that returns without
    closing gets a close 1000; one that raises is logged with its traceback and closed 1011
    (never accepted: the upgrade is refused, 403)."""

    async def routed(scope: Any, receive: Any, send: Any) -> None:
        if (
            scope.get("type") != "websocket"
            or scope.get("path") != (scope.get("root_path") or "") + path
        ):
            await app(scope, receive, send)
            return
        ws = AsgiWebSocket(scope, receive, send)
        code = NORMAL_CLOSURE
        with ws.cancel_scope:
            try:
                await handler(ws)
            except Exception:
                log.exception("websocket %s failed", path)
                code = INTERNAL_ERROR
        if not ws.gone and not ws.closed:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await ws.close(code)

    return routed
