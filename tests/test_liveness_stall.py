"""Liveness when our own loop is behind (websocket/liveness.py): after the server's event loop
stalled for longer than `pong_timeout` (a long GC pause, a tracemalloc snapshot, a starved
process), the peers' pongs wait unread in the kernel; judging them overdue then reset every
client at once (100 of 100 with close 1006 in a soak). Unread input defers the verdict by at
most one more `pong_timeout`, so a peer that truly never reads is still found."""

from __future__ import annotations

import trio
import trio.testing
from wsproto.events import Ping, TextMessage

from bargein.transports.websocket import ConnectionLimits
from bargein.transports.websocket.liveness import Liveness, Unresponsive, unread_bytes, watch
from tests.test_slow_consumer_liveness import _FakeStream, _FakeTcpServer, _FakeWs


def test_unread_input_defers_the_verdict_by_one_pong_timeout() -> None:
    state = Liveness(2.0, 6.0, now=0.0)
    state.output()
    assert state.ping(2.0) is not None
    state.sent()
    assert state.overdue(6.0)
    assert not state.overdue(6.0, unread=10)
    assert not state.overdue(11.99, unread=10)
    assert state.overdue(12.0, unread=10)


async def test_unread_bytes_counts_what_waits_for_our_reader() -> None:
    a, b = trio.socket.socketpair()
    with a, b:
        assert unread_bytes(a) == 0
        await b.send(b"x" * 37)
        await trio.sleep(0.01)  # loopback delivery
        assert unread_bytes(a) == 37
        await a.recv(100)
        assert unread_bytes(a) == 0
    assert unread_bytes(a) == 0  # closed: unknown counts as nothing


async def _stalled_reader(read_at: float | None) -> tuple[bool, float]:
    """The peer answered the first ping at once, but the bytes of its pong wait unread until
    `read_at` (our reader stalled; None: never read, and no more pongs). (reset?, when)."""
    a, b = trio.socket.socketpair()
    with a, b:
        dead = False
        start = trio.current_time()
        async with trio.open_nursery() as nursery:
            stream = _FakeStream(nursery, _FakeTcpServer(a), delay=None)
            limits = ConnectionLimits(ping_interval=2.0, pong_timeout=6.0)

            async def replies() -> None:
                while True:
                    await trio.sleep(0.5)
                    stream.connection.send(TextMessage("x"))

            async def peer() -> None:  # the pong's bytes are in our kernel buffer by 2.1 s
                await trio.sleep(2.1)
                await b.send(b"\x8a\x08" + (1).to_bytes(8, "big"))
                if read_at is None:
                    return
                await trio.sleep_until(start + read_at)
                await a.recv(100)  # what hypercorn's reader does once it runs again
                pong = Ping((1).to_bytes(8, "big")).response()
                stream.connection._connection.pending.append(pong)
                for _ in stream.connection.events():
                    pass
                stream.delay = 0.1  # and it answers the later pings as they come

            nursery.start_soon(replies)
            nursery.start_soon(peer)
            with trio.move_on_after(30.0):
                try:
                    await watch(_FakeWs(stream), limits)
                except Unresponsive:
                    dead = True
            nursery.cancel_scope.cancel()
        return dead, trio.current_time() - start


async def test_a_pong_read_late_by_our_stalled_loop_keeps_the_peer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # The deadline was 6 s after the start; our reader takes the pong at 9 s.
    dead, _ = await _stalled_reader(read_at=9.0)
    assert not dead


async def test_unread_input_that_is_never_read_still_ends_the_peer(
    autojump_clock: trio.testing.MockClock,
) -> None:
    dead, at = await _stalled_reader(read_at=None)
    assert dead
    assert 12.0 <= at < 12.1  # one more pong_timeout, in 50 ms rechecks
