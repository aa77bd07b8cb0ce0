"""An ASGI wrapper that keeps reading a WebSocket's events after the app is done with it.

hypercorn delivers a connection's events to the app through one bounded channel, fed by two of
its tasks: the socket reader (messages) and the writer, which on a write error puts the
disconnect. The disconnect can overtake messages the reader is still waiting to put; quart stops
reading at the disconnect, so the reader's put waits forever, the reader never reads the socket
again and never closes it: one fd per connection, for ever (seen: 130–180 of 200 connections
whose clients left at once while the server was saturated). After the app returns, this reads
and drops what hypercorn still puts, until nothing came for `idle` seconds or `bound` passed,
so the reader gets through, sees the socket closed and closes it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio

App = Callable[[Any, Any, Any], Awaitable[None]]  # ASGI: (scope, receive, send)


def drain_after_close(app: App, *, idle: float = 0.5, bound: float = 10.0) -> App:
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "websocket":
            await app(scope, receive, send)
            return
        try:
            await app(scope, receive, send)
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(bound):
                while True:
                    with trio.move_on_after(idle) as quiet:
                        await receive()
                    if quiet.cancelled_caught:
                        break

    return wrapped
