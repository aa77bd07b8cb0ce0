"""WebSocket ping/pong liveness: find a peer that stopped reading, whatever its buffers.

A client that stops reading still has its TCP segments acknowledged while its kernel grows the
receive buffer (Linux autotunes it up to `tcp_rmem`'s maximum, 32 MiB here), so the server's
writes do not stall for an hour and nothing at the TCP layer tells it from a reader. RFC 6455
clients (browsers, `websockets`, trio-websocket, wsproto-based) answer a ping when they read it,
after everything sent before it: a pong proves the peer read that far. So the server pings every
`ping_interval` s; a peer that answered no ping for `pong_timeout` s while one waits is reset
(RST, as for a stalled write, tcp.py) and counted as a slow consumer.

hypercorn 0.17 can send pings but drops the pongs and never times out, and ASGI gives an app no
ping. `watch` reaches hypercorn's WSStream the way tcp.py reaches the socket, sends pings with
its `_send_wsproto_event` and sees pongs through a thin proxy over its wsproto `connection`.
Anything else (a test double, another server) runs without liveness. `Liveness` is the pure
state: ping due? pong overdue?
"""

from __future__ import annotations

import fcntl
import logging
import math
import struct
import termios
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

import trio
from wsproto.events import Event as WsEvent
from wsproto.events import Ping, Pong

from bargein.transports.websocket.limits import ConnectionLimits
from bargein.transports.websocket.tcp import abort, connection_socket, server_objects
from bargein.transports.websocket.transport import SlowConsumer

log = logging.getLogger("bargein.transports")

_PAYLOAD_BYTES = 8  # a ping's sequence number, big-endian; other pongs are not ours
_UNREAD_RECHECK_S = 0.05  # while our reader catches up on the peer's input
# Unanswered pings kept: a reader that lags this far behind skips pings (no more state).
MAX_WAITING = 64


class Unresponsive(SlowConsumer):
    """The peer answered no ping for `pong_timeout`: it stopped reading."""


class Liveness:
    """Pings to send and pongs received, on a clock the caller gives (pure, no I/O).

    `last_heard` is when the peer last proved it reads: the start, or a pong to one of our
    pings. A pong answers its ping and every earlier one (RFC 6455 lets a peer answer only the
    latest). The peer is overdue once a ping waits and nothing was heard for `pong_timeout`.
    A ping goes out only if something was sent (`output`) since the last one: a peer that was
    sent nothing has nothing to fall behind on, and an idle connection costs no pings.
    """

    def __init__(
        self, ping_interval: float, pong_timeout: float, now: float, keepalive: float = 0.0
    ) -> None:
        if not (ping_interval > 0 and pong_timeout > 0):
            raise ValueError("ping_interval and pong_timeout must be > 0")
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        # > 0: a ping also goes out after this long without one, output or not.
        self.keepalive = keepalive
        self._last_ping = now
        self.last_heard = now
        self.next_ping = now + ping_interval
        self.pongs = 0  # pongs that answered a ping of ours
        self.foreign_pongs = 0  # unsolicited, or answers to pings not ours: not proof of reading
        self._seq = 0
        self._waiting: deque[tuple[int, float]] = deque()  # (sequence number, sent at)
        self._in_flight = False  # a ping is being written (the write may be stuck)
        self._output = False  # something was sent since the last ping

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def output(self) -> None:
        """Something (not a ping) was sent to the peer."""
        self._output = True

    def ping(self, now: float) -> bytes | None:
        """The payload of the ping to send now, or None (not due, nothing sent since the last,
        one still being written, or too many waiting). Call `sent` once it is written."""
        if now < self.next_ping:
            return None
        self.next_ping = now + self.ping_interval
        idle_due = self.keepalive > 0 and now >= self._last_ping + self.keepalive
        if not (self._output or idle_due) or self._in_flight or len(self._waiting) >= MAX_WAITING:
            return None
        self._output = False
        self._last_ping = now
        if not self._waiting:
            # What this ping proves read was sent since the last check, one interval ago at
            # most: a quiet stretch before it (nothing sent, no pings) is not the peer's delay.
            self.last_heard = max(self.last_heard, now - self.ping_interval)
        self._seq += 1
        self._waiting.append((self._seq, now))
        self._in_flight = True
        return self._seq.to_bytes(_PAYLOAD_BYTES, "big")

    def sent(self) -> None:
        self._in_flight = False

    def pong(self, payload: bytes, now: float) -> bool:
        """Record a pong; True if it answered a ping of ours that was waiting."""
        seq = int.from_bytes(payload, "big") if len(payload) == _PAYLOAD_BYTES else -1
        if not self._waiting or not self._waiting[0][0] <= seq <= self._waiting[-1][0]:
            self.foreign_pongs += 1
            return False
        while self._waiting and self._waiting[0][0] <= seq:
            self._waiting.popleft()
        self.pongs += 1
        self.last_heard = now
        return True

    def overdue(self, now: float, unread: int = 0) -> bool:
        """`unread`: bytes from the peer our reader has not taken yet. While any wait, our loop
        is behind (stalled or starved), not necessarily the peer: its pong may be among them,
        so the verdict waits up to one more `pong_timeout` (a peer that never reads is still
        found: its unread input is read by a loop that is not behind)."""
        # The very sum `wake_at` gives (not `now - last_heard`, which rounds differently), so
        # waking at it always finds the verdict and never spins.
        deadline = self.last_heard + self.pong_timeout
        if unread > 0:
            deadline += self.pong_timeout
        return bool(self._waiting) and now >= deadline

    def wake_at(self) -> float:
        """When `ping` or `overdue` may next say something new."""
        deadline = self.last_heard + self.pong_timeout if self._waiting else math.inf
        return min(self.next_ping, deadline)

    def describe(self, now: float) -> str:
        return (
            f"no pong for {now - self.last_heard:.1f} s: pong_timeout={self.pong_timeout:g} "
            f"ping_interval={self.ping_interval:g} unanswered_pings={len(self._waiting)} "
            f"pongs={self.pongs}"
        )


class _PongTap:
    """hypercorn's wsproto Connection, telling `on_pong` of every Pong it parses and
    `on_output` of every event but a ping sent; everything passes through untouched."""

    def __init__(
        self,
        connection: Any,
        on_pong: Callable[[bytes], object],
        on_output: Callable[[], object],
    ) -> None:
        self._connection = connection
        self._on_pong = on_pong
        self._on_output = on_output

    def __getattr__(self, name: str) -> Any:
        return getattr(self._connection, name)

    def send(self, event: WsEvent) -> bytes:
        if not isinstance(event, Ping):
            self._on_output()
        data: bytes = self._connection.send(event)
        return data

    def events(self) -> Iterator[WsEvent]:
        for event in self._connection.events():
            if isinstance(event, Pong):
                self._on_pong(bytes(event.payload))
            yield event


def unread_bytes(sock: trio.socket.SocketType) -> int:
    """Bytes from the peer waiting in the kernel for our reader (FIONREAD); 0 if unknown."""
    try:
        buf = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    except (OSError, ValueError):  # closed, or no such ioctl here
        return 0
    return int(struct.unpack("i", buf)[0])


def hypercorn_stream(ws: object) -> Any | None:
    """hypercorn's WSStream under `ws` (accepted: its wsproto connection exists), or None."""
    for owner in server_objects(ws):
        if all(hasattr(owner, a) for a in ("_send_wsproto_event", "connection", "task_group")):
            return owner
    return None


async def watch(ws: object, limits: ConnectionLimits, *, keepalive: bool = False) -> None:
    """Ping the peer of the accepted `ws` until cancelled; when it is overdue, reset its
    connection and raise `Unresponsive`. `keepalive`: also ping an idle connection every
    `limits.keepalive_interval`. Returns at once when `limits` disable liveness or `ws` is not
    served by hypercorn."""
    if not (limits.ping_interval > 0 and limits.pong_timeout > 0):
        return
    stream, sock = hypercorn_stream(ws), connection_socket(ws)
    if stream is None or sock is None:
        log.debug("no WebSocket liveness: %s is not served by hypercorn", type(ws).__name__)
        return
    idle_pings = limits.keepalive_interval if keepalive else 0.0
    state = Liveness(limits.ping_interval, limits.pong_timeout, trio.current_time(), idle_pings)
    stream.connection = _PongTap(
        stream.connection, lambda payload: state.pong(payload, trio.current_time()), state.output
    )

    async def send_ping(payload: bytes) -> None:
        try:
            await stream._send_wsproto_event(Ping(payload))
        except Exception as exc:  # the connection is ending: its handler sees that itself
            log.debug("ping not sent: %r", exc)
        finally:
            state.sent()

    while True:
        await trio.sleep_until(state.wake_at())
        now = trio.current_time()
        if state.overdue(now):
            unread = unread_bytes(sock)
            if state.overdue(now, unread):
                abort(sock)
                raise Unresponsive(state.describe(now))
            # Our reader is behind: let it take what waits (a pong, perhaps), then judge again.
            await trio.sleep(_UNREAD_RECHECK_S)
            continue
        payload = state.ping(now)
        if payload is not None:
            # In the connection's own task group, as hypercorn sends its pings: the (shielded)
            # write may be stuck behind a peer that does not read; the deadline is kept here,
            # and our caller never waits for that write.
            stream.task_group.spawn(send_ping, payload)
