"""The TCP socket under a served WebSocket: bound what the kernel buffers, and abort it.

hypercorn writes to the socket inside a shielded cancel scope, so a write to a peer that stopped
reading can never be cancelled: only closing the socket ends it (trio then wakes the blocked
write with `ClosedResourceError`, which hypercorn takes as the connection's end). ASGI gives an
app no handle on the socket, so `connection_socket` follows the send callables down from
quart's websocket (`server_objects`: quart → hypercorn's WSStream → H11Protocol →
TCPServer.stream.socket; liveness.py finds the WSStream the same way);
anything else (a test double, another server) gets None and keeps the cancellable-send path.
"""

from __future__ import annotations

import functools
import logging
import socket
import struct
from collections.abc import Iterator

import trio

log = logging.getLogger("bargein.transports")

_MAX_HOPS = 8


def server_objects(ws: object) -> Iterator[object]:
    """The objects behind `ws`'s send callable, outermost first: with quart under hypercorn,
    the WSStream, the H11Protocol (or H2Protocol) and the TCPServer; nothing for a test double."""
    target: object = getattr(ws, "_send", None)
    for _ in range(_MAX_HOPS):
        if isinstance(target, functools.partial):
            # quart: partial(ASGIWebsocketConnection.send_data, asgi_send)
            target = next((a for a in target.args if callable(a)), None)
            continue
        owner = getattr(target, "__self__", None)
        if owner is None:
            return
        yield owner
        target = getattr(owner, "send", None)


def connection_socket(ws: object) -> trio.socket.SocketType | None:
    """The trio socket hypercorn serves `ws` on, or None if it cannot be found."""
    for owner in server_objects(ws):
        sock = getattr(getattr(owner, "stream", None), "socket", None)
        if isinstance(sock, trio.socket.SocketType):
            return sock
    return None


def limit_unsent(sock: trio.socket.SocketType, max_unsent: int) -> None:
    """Let at most `max_unsent` bytes wait in the kernel unsent (TCP_NOTSENT_LOWAT): beyond it
    our writes block, so a stalled peer shows up as a stalled write within a bounded amount of
    output (not after megabytes of autotuned send buffer), and audio waits in our queue where a
    barge-in can still flush it."""
    option = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # 25 on Linux
    try:
        sock.setsockopt(socket.IPPROTO_TCP, option, max_unsent)
    except OSError as exc:  # not TCP, or the platform lacks it: the write stall still counts
        log.debug("TCP_NOTSENT_LOWAT not set: %r", exc)


def abort(sock: trio.socket.SocketType) -> None:
    """Reset the connection now: linger 0 makes the close send RST and discard what is unsent,
    so neither side keeps the connection (no FIN_WAIT probing a zero window)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError as exc:
        log.debug("SO_LINGER not set: %r", exc)
    sock.close()  # trio: wakes the task blocked writing to it (ClosedResourceError)
