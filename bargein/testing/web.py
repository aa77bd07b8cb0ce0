"""Clients for tests of the demo web app over real sockets on 127.0.0.1: the server on an
ephemeral port, a protocol client over trio-websocket and an HTTP/1.1 client over h11 whose
body feeds an SSE parser. Every header can be set, so access-control tests can send a foreign
`Host` or `Origin`."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import h11
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from bargein.engines.base import PlanOutput, PlanRequest, Sink, TextDelta
from bargein.transports.app import DemoServer
from bargein.transports.protocol import (
    AudioOut,
    ClientProtocol,
    ErrorMessage,
    ServerMessage,
    SessionStart,
    SessionStarted,
)
from bargein.transports.sse import SseComment, SseEvent, SseParser

__all__ = [
    "Client",
    "GatedPlanner",
    "HttpClient",
    "connect",
    "header",
    "http",
    "running",
]


@asynccontextmanager
async def running(server: DemoServer) -> AsyncIterator[int]:
    """Serve `server` on an ephemeral port for the block; yield the port."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:

        async def serve(task_status: trio.TaskStatus[list[str]]) -> None:
            await server.serve("127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status)

        urls: list[str] = await nursery.start(serve)
        try:
            yield int(urls[0].rsplit(":", 1)[1])
        finally:
            stop.set()


class Client:
    """A protocol client over trio-websocket that records everything it receives."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self.codec = ClientProtocol()
        self.messages: list[ServerMessage] = []
        self._new = trio.Event()
        self.closed = False
        self.close_code: int | None = None

    async def send(self, message: Any) -> None:
        await self.ws.send_message(self.codec.send(message))

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send_message(frame)

    async def read_forever(self) -> None:
        try:
            while True:
                self.messages.append(self.codec.receive(await self.ws.get_message()))
                self._new.set()
                self._new = trio.Event()
        except ConnectionClosed as closed:
            self.close_code = closed.reason.code if closed.reason else None
        finally:
            self.closed = True
            self._new.set()

    async def wait_for(self, predicate: Callable[[ServerMessage], bool]) -> ServerMessage:
        seen = 0
        while True:
            for message in self.messages[seen:]:
                if predicate(message):
                    return message
            seen = len(self.messages)
            if self.closed:
                raise AssertionError(f"connection closed; got {self.of(ErrorMessage)}")
            await self._new.wait()

    async def wait_closed(self) -> None:
        while not self.closed:
            await self._new.wait()

    def of(self, kind: type) -> list[Any]:
        return [m for m in self.messages if isinstance(m, kind)]

    def audio(self, turn: int) -> list[AudioOut]:
        return [m for m in self.messages if isinstance(m, AudioOut) and m.turn == turn]


@asynccontextmanager
async def connect(
    port: int,
    start: SessionStart | None = None,
    *,
    host: str | None = None,
    subprotocols: Sequence[str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> AsyncIterator[Client]:
    """A WebSocket to `/ws` with an optional `Host` (default 127.0.0.1:port) and headers."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with trio.open_nursery() as nursery:
        ws = await wrap_client_stream(
            nursery,
            stream,
            host or f"127.0.0.1:{port}",
            "/ws",
            subprotocols=subprotocols,
            extra_headers=[(k.encode(), v.encode()) for k, v in (headers or {}).items()],
        )
        client = Client(ws)
        nursery.start_soon(client.read_forever)
        if start is not None:
            await client.send(start)
            await client.wait_for(lambda m: isinstance(m, SessionStarted))
        try:
            yield client
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await ws.aclose()
            nursery.cancel_scope.cancel()


class HttpClient:
    """One HTTP/1.1 exchange over a trio stream, with the body fed to an SSE parser.
    `request` sends Host 127.0.0.1, Content-Length and (with a body) Content-Type
    application/json unless `headers` names them."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.conn = h11.Connection(h11.CLIENT)
        self.parser = SseParser()
        self.items: deque[SseEvent | SseComment] = deque()
        self.body = b""
        self.ended = False
        self.complete = False  # the response ended with its end of message, not a cut

    async def request(
        self, method: str, path: str, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> h11.Response:
        data = (
            b""
            if body is None
            else (body if isinstance(body, bytes) else json.dumps(body).encode())
        )
        # Defaults, each replaced by a header of the same name in `headers`.
        chosen = {
            "host": ("Host", "127.0.0.1"),
            "content-length": ("Content-Length", str(len(data))),
        }
        if data:
            chosen["content-type"] = ("Content-Type", "application/json")
        chosen.update({k.lower(): (k, v) for k, v in (headers or {}).items()})
        if "transfer-encoding" in chosen:  # chunked: h11 frames the body, no length
            del chosen["content-length"]
        all_headers = list(chosen.values())
        await self._send(h11.Request(method=method, target=path, headers=all_headers))

        async def send_body() -> None:
            try:
                await self._send(h11.Data(data=data))
                await self._send(h11.EndOfMessage())
            except trio.BrokenResourceError:
                pass  # the server answered before reading it all (413) and closed

        # Read while sending, as a real client does: a server may refuse a large body early,
        # and its answer must be read before its close resets the connection.
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_body)
            event = await self._next()
        assert isinstance(event, h11.Response), event
        return event

    async def _send(self, event: Any) -> None:
        data = self.conn.send(event)
        if data:
            await self.stream.send_all(data)

    async def _next(self) -> Any:
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
                continue
            return event

    async def item(self) -> SseEvent | SseComment | None:
        """The next SSE event or comment; None at the end of the response."""
        while not self.items:
            if self.ended:
                return None
            event = await self._next()
            if isinstance(event, h11.Data):
                self.body += event.data
                self.items.extend(self.parser.feed(event.data))
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                self.ended = True
                self.complete = isinstance(event, h11.EndOfMessage)
        return self.items.popleft()

    async def events(self) -> list[SseEvent]:
        out = []
        while (item := await self.item()) is not None:
            if isinstance(item, SseEvent):
                out.append(item)
        return out


@asynccontextmanager
async def http(port: int) -> AsyncIterator[HttpClient]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        yield HttpClient(stream)


def header(response: h11.Response, name: str) -> str | None:
    for key, value in response.headers:
        if key.decode().lower() == name.lower():
            return str(value.decode())
    return None


class GatedPlanner:
    """Streams `before` tokens, waits for `gate`, streams `after` tokens; records cancellation."""

    name = "gated"

    def __init__(self, before: list[str], after: list[str]) -> None:
        self.before, self.after = before, after
        self.gate = trio.Event()
        self.cancelled = trio.Event()
        self.finished = trio.Event()
        self.requests: list[PlanRequest] = []

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        self.requests.append(request)
        try:
            for token in self.before:
                await out.send(TextDelta(token))
            await self.gate.wait()
            for token in self.after:
                await out.send(TextDelta(token))
            self.finished.set()
        except trio.Cancelled:
            self.cancelled.set()
            raise
