"""An ASGI wrapper that frees a WebSocket's event queue from the app once the app is done with it.

hypercorn delivers a connection's events to the app through one bounded channel, fed by two of
its tasks: the socket reader (messages) and the writer, which on a write error puts the
disconnect. The disconnect can overtake messages the reader is still waiting to put; the app
stops reading at the disconnect, so the reader's put waits forever, the reader never reads the
socket again and never closes it: one fd per connection, for ever (seen: 130–180 of 200
connections whose clients left at once while the server was saturated). When a client's close
arrives while the queue is full, the reader waits the same way and the close never completes.

After the app returns, `drain_after_close` detaches the queue (`detach`): whatever hypercorn puts
from then on is dropped where it is put, and what is queued is taken, which wakes every task
waiting to put. No task of hypercorn's can wait on the queue again, so the reader goes on to see
the socket closed and closes it, and nothing waits here: the wrapper returns at once, whether
the connection is open, closing or the server stopping. Under another ASGI server (the queue
not reachable) it reads and drops events instead, until a disconnect, `idle` seconds without
any, or `bound`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

App = Callable[[Any, Any, Any], Awaitable[None]]  # ASGI: (scope, receive, send)


def drain_after_close(app: App, *, idle: float = 0.5, bound: float = 10.0) -> App:
    close_refused_upgrades()
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") == "http":
            await app(scope, receive, closing_send(send, bound))
            return
        if scope.get("type") != "websocket":
            await app(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        finally:
            if not detach(receive, send):
                with trio.CancelScope(shield=True), trio.move_on_after(bound):
                    await _read_until_quiet(receive, idle)

    return wrapped


def close_refused_upgrades() -> None:
    """Make hypercorn close a WebSocket upgrade it refuses itself (400: no key, a version it
    does not speak, data before the accept; 404: an unknown server name). Its WSStream sends
    the response but not the `StreamClosed` that would close the connection (its HTTP stream
    does), so each such request held a server socket until the client left. Idempotent."""
    try:
        from hypercorn.protocol.events import Body, Data, Request, StreamClosed
        from hypercorn.protocol.ws_stream import WSStream
    except ImportError:  # another ASGI server
        return
    original = WSStream.handle
    if getattr(original, "closes_refusals", False):
        return

    async def handle(self: Any, event: Any) -> None:
        was_closed = self.closed
        await original(self, event)
        refused = self.closed and not was_closed and not self.handshake.accepted
        if refused and isinstance(event, Request | Body | Data):
            await self.send(StreamClosed(stream_id=self.stream_id))

    handle.closes_refusals = True  # type: ignore[attr-defined]
    WSStream.handle = handle  # type: ignore[method-assign]


def closing_send(send: Any, bound: float) -> Any:
    """`send` whose last body message is shielded (at most `bound` seconds). hypercorn ends the
    response inside that send: it closes the connection (`Connection: close`, HTTP/1.0) or
    starts its keep-alive idle timer. quart-trio's handler cancels its nursery as soon as the
    `http.disconnect` this produces reaches its reader, which cancelled that close half-way: the
    connection then stayed open until the client left (one fd per client that never closes)."""

    async def shielded(message: Any) -> None:
        if message.get("type") == "http.response.body" and not message.get("more_body", False):
            with trio.CancelScope(shield=True), trio.move_on_after(bound):
                await send(message)
        else:
            await send(message)

    return shielded


def detach(receive: Any, send: Any) -> bool:
    """Make hypercorn drop the events it still puts for this connection and take the queued
    ones (waking their putters); False, nothing done, unless `receive` reads a trio memory
    channel and `send` belongs to an object that puts into it (`app_put`: hypercorn's
    WSStream). Synchronous: no task runs between the swap and the emptying."""
    channel = getattr(receive, "__self__", None)
    stream: Any = getattr(send, "__self__", None)
    if not isinstance(channel, trio.MemoryReceiveChannel) or not hasattr(stream, "app_put"):
        return False
    stream.app_put = _dropped
    while True:
        try:
            channel.receive_nowait()
        except (trio.WouldBlock, trio.EndOfChannel, trio.ClosedResourceError):
            return True


async def _dropped(event: Any) -> None:
    await trio.lowlevel.checkpoint()


async def _read_until_quiet(receive: Any, idle: float) -> None:
    while True:
        with trio.move_on_after(idle) as quiet:
            event = await receive()
        if quiet.cancelled_caught or event.get("type") == "websocket.disconnect":
            return
