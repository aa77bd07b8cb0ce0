"""A fast path for the WebSocket frames a client sends most: whole, masked text or binary frames.

hypercorn parses every received frame with wsproto (`Connection.events`), ~35 µs for a 20 ms
audio frame here — with 50 audio frames and 10 playback reports a second per speaker, the
largest single cost of serving one. `FastFrames` wraps hypercorn's wsproto connection (as
liveness.py's pong tap does) and parses the common case itself: a complete frame with FIN set,
no RSV bits, opcode text or binary, masked, at most 65,535 bytes, on an open connection (text:
valid UTF-8). It yields the same `TextMessage` / `BytesMessage` events, so hypercorn's message
size limit and everything after it are unchanged. Anything else goes to wsproto untouched: a
complete control frame (ping, pong) by itself, wsproto being idle between whole frames; any other
frame (close, fragment, extension bits, 64-bit length, unmasked, bad UTF-8, a connection not
open) and everything after it, for good — wsproto then decides exactly as it would have.
Connections whose client offered an extension (permessage-deflate: browsers) keep wsproto's
parser throughout.

While a `sink` is set (`AsgiWebSocket.read_inline`), the data frames parsed here go straight
to it as they are parsed, without an event, hypercorn's message buffer, its ASGI event dict
and the app's `put`: ~1/3 of what a received audio frame cost between the socket and the
session. The sink returns False to stop: the frames after it are yielded as events again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, Event, TextMessage

from bargein.transports.websocket.tcp import server_objects

log = logging.getLogger("bargein.transports")

_TEXT, _BINARY = 0x81, 0x82  # FIN, no RSV bits, opcode 1 / 2
_PING, _PONG = 0x89, 0x8A
_MASKED = 0x80
# What `FastFrames._frame_at` finds.
_DATA, _CONTROL, _INCOMPLETE, _OTHER = object(), object(), object(), object()


def unmask(data: bytes | bytearray, mask: bytes | bytearray) -> bytes:
    """`data` XOR the repeated 4-byte `mask` (RFC 6455 5.3), as one big-integer XOR."""
    n = len(data)
    if not n:
        return b""
    key = int.from_bytes((bytes(mask) * (n // 4 + 1))[:n], "little")
    return (int.from_bytes(data, "little") ^ key).to_bytes(n, "little")


class FastFrames:
    """hypercorn's wsproto `Connection` (server side), with the common frames parsed here."""

    def __init__(self, connection: Any) -> None:
        self._connection = connection
        self._buffer = bytearray()
        self.slow = False  # wsproto parses everything from now on
        self.fast_frames = 0  # frames parsed here (the rest went to wsproto)
        # Takes each data frame parsed here instead of an event (never raises); False: stop.
        self.sink: Callable[[bytes | str], bool] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def receive_data(self, data: bytes | None) -> None:
        if self.slow or data is None:
            self._go_slow()
            self._connection.receive_data(data)
        else:
            self._buffer += data

    def _go_slow(self) -> None:
        self.slow = True
        if self._buffer:
            rest, self._buffer = bytes(self._buffer), bytearray()
            self._connection.receive_data(rest)

    def events(self) -> Iterator[Event]:
        if self.slow:
            yield from self._connection.events()
            return
        buf = self._buffer
        pos = 0
        try:
            while True:
                kind, head, end = self._frame_at(pos)
                if kind is _INCOMPLETE:
                    return
                if kind is _OTHER:
                    break
                if kind is _CONTROL:
                    frame, pos = bytes(buf[pos:end]), end
                    self._connection.receive_data(frame)  # whole: wsproto is idle after it
                    yield from self._connection.events()
                    continue
                payload = unmask(buf[pos + head : end], buf[pos + head - 4 : pos + head])
                data: bytes | str = payload
                if buf[pos] != _BINARY:
                    try:
                        data = payload.decode("utf-8")
                    except UnicodeDecodeError:
                        break  # wsproto fails the connection (1007)
                pos = end
                self.fast_frames += 1
                sink = self.sink
                if sink is not None:
                    if not sink(data):
                        self.sink = None
                    continue
                if isinstance(data, bytes):
                    event: Event = BytesMessage(data, True, True)
                else:
                    event = TextMessage(data, True, True)
                yield event
        finally:
            del buf[:pos]
        # A frame that is not ours: wsproto takes it and everything after it.
        self._go_slow()
        yield from self._connection.events()

    def _frame_at(self, pos: int) -> tuple[object, int, int]:
        """What the buffered frame at `pos` is: (kind, header length, end)."""
        buf = self._buffer
        if len(buf) - pos < 2:
            return _INCOMPLETE, 0, 0
        b0, b1 = buf[pos], buf[pos + 1]
        length = b1 & 0x7F
        if not b1 & _MASKED or length == 127:
            return _OTHER, 0, 0
        if b0 in (_TEXT, _BINARY) and self._connection.state is ConnectionState.OPEN:
            kind = _DATA
        elif b0 in (_PING, _PONG) and length <= 125:
            kind = _CONTROL
        else:
            return _OTHER, 0, 0
        head = 6
        if length == 126:
            if len(buf) - pos < 4:
                return _INCOMPLETE, 0, 0
            length, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 8
        end = pos + head + length
        if end > len(buf):
            return _INCOMPLETE, 0, 0
        return kind, head, end


def speed_up(ws: Any) -> FastFrames | None:
    """Wrap the wsproto connection of hypercorn's WSStream under the accepted `ws` in
    `FastFrames`; None (nothing changed) when `ws` is not served by hypercorn or its client
    offered an extension."""
    headers = ws.scope.get("headers") or ()
    if any(bytes(name).lower() == b"sec-websocket-extensions" for name, _ in headers):
        return None
    for owner in server_objects(ws):
        connection = getattr(owner, "connection", None)
        if connection is not None and hasattr(owner, "_handle_events"):
            fast = FastFrames(connection)
            owner.connection = fast  # type: ignore[attr-defined]
            return fast
    return None
