"""trio-websocket (0.12.2) answers a ping even after it sent its Close frame: wsproto refuses the
Pong (`LocalProtocolError ... LOCAL_CLOSING`) and the exception escapes the client's reader
task, so a client whose close crosses a server ping in flight crashes (upstream issue
python-trio/trio-websocket#184, fix proposed in PR #198). The server pings every connection
(ping/pong liveness, docs/web.md), so our test and benchmark clients — trio-websocket all — met
it on ~1 % of closes under load. RFC 6455 lets an endpoint that sent a Close not answer pings;
`apply` makes trio-websocket do that. Applied when `bargein.testing` is imported (the tests, the
benchmarks); the server does not use trio-websocket.
"""

from __future__ import annotations

from typing import Any

from trio_websocket import _impl
from wsproto.connection import ConnectionState


def apply() -> None:
    connection: Any = _impl.WebSocketConnection
    if getattr(connection._handle_ping_event, "_bargein_fixed", False):
        return
    original = connection._handle_ping_event

    async def _handle_ping_event(self: Any, event: Any) -> None:
        if self._wsproto.state is not ConnectionState.OPEN:
            return  # our Close is out (or theirs is in): no Pong may follow it
        await original(self, event)

    _handle_ping_event._bargein_fixed = True  # type: ignore[attr-defined]
    connection._handle_ping_event = _handle_ping_event
