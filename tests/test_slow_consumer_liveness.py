"""WebSocket ping/pong liveness (issue 16): a client that never reads is found whatever its
receive buffer. The pure state on a fake clock, the trio loop on trio's mock clock with a
stand-in for hypercorn's objects, then real hypercorn on 127.0.0.1 with real sockets and the
system's default (autotuned) receive buffer: a never-reading client is reset and counted; a
trio-websocket client and one reading at half the rate of the replies stay connected."""

from __future__ import annotations

import functools
import json
import socket
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
import trio
import trio.testing
import wsproto
from trio_websocket import wrap_client_stream
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
    TextMessage,
)

from bargein.testing.web import connect, running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import SessionStart, Text
from bargein.transports.websocket import ConnectionLimits
from bargein.transports.websocket.liveness import MAX_WAITING, Liveness, Unresponsive, watch
from tests.test_lifecycle import long_reply, settled

HANG_GUARD = 30  # seconds; a guard against hangs, never a performance bound
# Short enough for a quick test, long enough that a loaded machine's loop lag is no pong gap.
# A reply starts with a burst of ~16 KB of text frames, which a slow reader reads before the
# first ping: the timeout leaves room for that at half speed.
QUICK = ConnectionLimits(ping_interval=0.25, pong_timeout=3.0, stall_timeout=3600.0)


# -- the pure state -------------------------------------------------------------------------


def ping_after_output(state: Liveness, now: float) -> bytes | None:
    state.output()  # something was sent since the last ping
    return state.ping(now)


def test_pings_every_interval_and_a_silent_peer_is_overdue_after_the_timeout() -> None:
    state = Liveness(2.0, 6.0, now=100.0)
    assert ping_after_output(state, 101.9) is None and not state.overdue(101.9)
    first = ping_after_output(state, 102.0)
    assert first is not None and state.waiting == 1
    state.sent()
    assert ping_after_output(state, 103.0) is None  # not due yet
    assert ping_after_output(state, 104.0) is not None
    state.sent()
    assert not state.overdue(105.9)
    assert state.overdue(106.0)  # nothing heard since the start, 6 s ago, and pings wait
    assert "unanswered_pings=2" in state.describe(106.0)


def test_nothing_waiting_is_never_overdue() -> None:
    state = Liveness(2.0, 6.0, now=0.0)
    assert not state.overdue(1e6)  # no ping sent: nothing to be late for
    assert state.wake_at() == 2.0


def test_a_pong_answers_its_ping_and_every_earlier_one() -> None:
    state = Liveness(1.0, 3.0, now=0.0)
    payloads = []
    for t in (1.0, 2.0, 3.0):
        payload = ping_after_output(state, t)
        assert payload is not None
        payloads.append(payload)
        state.sent()
    assert state.pong(payloads[1], now=3.5)
    assert state.waiting == 1 and state.last_heard == 3.5 and state.pongs == 1
    assert not state.overdue(6.4) and state.overdue(6.5)
    assert state.pong(payloads[2], now=6.4)
    assert state.waiting == 0 and not state.overdue(100.0)


@pytest.mark.parametrize(
    "payload",
    [b"", b"hello", (999).to_bytes(8, "big"), (0).to_bytes(8, "big")],
    ids=["empty (unsolicited heartbeat)", "not ours", "a ping never sent", "before the first"],
)
def test_a_pong_that_answers_no_waiting_ping_is_no_proof_of_reading(payload: bytes) -> None:
    state = Liveness(1.0, 3.0, now=0.0)
    assert ping_after_output(state, 1.0) is not None
    state.sent()
    assert not state.pong(payload, now=2.0)
    assert state.foreign_pongs == 1 and state.last_heard == 0.0 and state.overdue(3.0)


def test_an_answered_ping_answered_again_does_not_count() -> None:
    state = Liveness(1.0, 3.0, now=0.0)
    payload = ping_after_output(state, 1.0)
    assert payload is not None
    state.sent()
    assert state.pong(payload, now=1.1)
    assert ping_after_output(state, 2.1) is not None
    state.sent()
    assert not state.pong(payload, now=4.0)  # a replay of the first: not the waiting one
    assert state.last_heard == 1.1 and state.overdue(1.1 + 3.0)


def test_a_slow_reader_whose_pongs_come_later_and_later_is_not_overdue() -> None:
    # A peer reading at half the rate we send reads ping k at 2·k·interval: each pong comes
    # one interval later than the last, a 2-interval gap, well inside the timeout.
    state = Liveness(2.0, 6.0, now=0.0)
    sent: dict[int, bytes] = {}
    t = 0.0
    while t < 120.0:
        t = round(t + 0.5, 3)
        payload = ping_after_output(state, t)
        if payload is not None:
            sent[int.from_bytes(payload, "big")] = payload
            state.sent()
        read = int(t // 4.0)  # ping k (sent at 2k) is read at 4k
        if read in sent:
            state.pong(sent.pop(read), t)
        assert not state.overdue(t), t
    assert state.pongs >= 25 and state.waiting > 10  # it lags further and further behind


def test_no_second_ping_while_one_is_stuck_being_written_and_the_deadline_holds() -> None:
    state = Liveness(1.0, 3.0, now=0.0)
    assert ping_after_output(state, 1.0) is not None  # never `sent`: its write is stuck
    assert ping_after_output(state, 2.0) is None and ping_after_output(state, 2.5) is None
    assert state.wake_at() == 3.0  # the next ping time moved on: no busy loop
    assert state.overdue(3.0)


def test_no_ping_while_nothing_was_sent_since_the_last() -> None:
    state = Liveness(1.0, 3.0, now=0.0)
    assert state.ping(1.0) is None  # nothing sent yet: nothing to fall behind on
    assert state.wake_at() == 2.0 and not state.overdue(1e6)
    state.output()
    payload = state.ping(2.0)
    assert payload is not None
    state.sent()
    assert state.ping(3.0) is None  # the ping itself is no output
    assert state.overdue(5.0)  # one waiting ping is enough for the verdict
    assert state.pong(payload, now=4.0) and not state.overdue(100.0)


def test_waking_at_wake_at_always_finds_something_to_do() -> None:
    # 1.1 + 3.0 - 1.1 < 3.0 in floats: the verdict must use the sum the wake-up time is.
    state = Liveness(0.7, 3.0, now=0.0)
    assert ping_after_output(state, 0.7) is not None
    state.sent()
    state.pong((1).to_bytes(8, "big"), now=1.1)
    assert ping_after_output(state, 1.4) is not None
    state.sent()
    for _ in range(10):
        now = state.wake_at()
        pinged = ping_after_output(state, now) is not None
        assert state.overdue(now) or pinged or state.wake_at() > now
        if state.overdue(now):
            break
    assert state.overdue(state.wake_at())


def test_at_most_max_waiting_pings_wait() -> None:
    state = Liveness(1.0, 1e9, now=0.0)
    for t in range(1, MAX_WAITING + 10):
        if ping_after_output(state, float(t)) is not None:
            state.sent()
    assert state.waiting == MAX_WAITING


@pytest.mark.parametrize("interval,timeout", [(0.0, 6.0), (2.0, 0.0), (-1.0, 6.0)])
def test_a_disabled_setting_is_no_state(interval: float, timeout: float) -> None:
    with pytest.raises(ValueError):
        Liveness(interval, timeout, now=0.0)


# -- the trio loop, with stand-ins for hypercorn's objects -----------------------------------


class _FakeConnection:
    """What hypercorn's WSStream uses of a wsproto Connection: `events()`."""

    def __init__(self) -> None:
        self.pending: list[Any] = []

    def events(self) -> Iterator[Any]:
        while self.pending:
            yield self.pending.pop(0)

    def send(self, event: Any) -> bytes:
        return b""


class _FakeTcpServer:
    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.stream = type("Stream", (), {"socket": sock})()

    async def protocol_send(self, event: object) -> None:
        await trio.lowlevel.checkpoint()


class _FakeStream:
    """hypercorn's WSStream as liveness uses it; the peer answers each ping after `delay`."""

    def __init__(self, nursery: trio.Nursery, tcp: _FakeTcpServer, delay: float | None) -> None:
        self.connection: Any = _FakeConnection()
        self.task_group = type("TaskGroup", (), {"spawn": nursery.start_soon})()
        self.send: Callable[[object], Awaitable[None]] = tcp.protocol_send
        self._nursery = nursery
        self.delay = delay
        self.pings: list[bytes] = []

    async def app_send(self, message: object) -> None:
        await trio.lowlevel.checkpoint()

    async def _send_wsproto_event(self, event: object) -> None:
        assert isinstance(event, Ping)
        self.pings.append(bytes(event.payload))
        if self.delay is not None:
            self._nursery.start_soon(self._answer, event.response())
        await trio.lowlevel.checkpoint()

    async def _answer(self, pong: Pong) -> None:
        assert self.delay is not None
        await trio.sleep(self.delay)
        self.connection._connection.pending.append(pong)  # under the tap, as bytes would be
        for _ in self.connection.events():  # what hypercorn does when data arrives
            pass


class _FakeWs:
    """quart's websocket as tcp.py walks it: `_send` a partial over the stream's app_send."""

    def __init__(self, stream: _FakeStream) -> None:
        self._send = functools.partial(self._send_data, stream.app_send)

    async def _send_data(self, send: object, data: object) -> None:
        await trio.lowlevel.checkpoint()


async def _watch_with(delay: float | None, run_for: float) -> tuple[_FakeStream, bool, bool]:
    """Run `watch` over stand-ins: (the stream, whether it raised, whether it closed the
    socket)."""
    a, b = trio.socket.socketpair()
    with a, b:
        dead = False
        async with trio.open_nursery() as nursery:
            stream = _FakeStream(nursery, _FakeTcpServer(a), delay)
            limits = ConnectionLimits(ping_interval=2.0, pong_timeout=6.0)

            async def replies() -> None:  # the session's output, through the tap
                while True:
                    await trio.sleep(0.5)
                    stream.connection.send(TextMessage("x"))

            nursery.start_soon(replies)
            with trio.move_on_after(run_for):
                try:
                    await watch(_FakeWs(stream), limits)
                except Unresponsive:
                    dead = True
            nursery.cancel_scope.cancel()
        return stream, dead, a.fileno() == -1


async def test_watch_resets_a_peer_that_answers_no_ping(
    autojump_clock: trio.testing.MockClock,
) -> None:
    started = trio.current_time()
    stream, dead, closed = await _watch_with(delay=None, run_for=60.0)
    assert dead and closed  # the socket was closed under it
    assert trio.current_time() - started == pytest.approx(6.0)  # the mock clock: exact
    assert len(stream.pings) == 2  # at 2 and 4 s; at 6 s the verdict comes first


async def test_watch_keeps_a_peer_that_answers_late_but_answers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    # Each pong 3.5 s after its ping: the first comes 5.5 s after the start, then every 2 s.
    stream, dead, closed = await _watch_with(delay=3.5, run_for=60.0)
    assert not dead and not closed
    assert len(stream.pings) >= 25


async def test_watch_does_nothing_without_hypercorn_or_when_disabled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    class Double:
        async def send(self, data: str | bytes) -> None: ...

    with trio.fail_after(1):  # mock clock: returns at once or never
        await watch(Double(), ConnectionLimits())
        await watch(object(), ConnectionLimits())
    a, b = trio.socket.socketpair()
    with a, b:
        async with trio.open_nursery() as nursery:
            stream = _FakeStream(nursery, _FakeTcpServer(a), None)
            with trio.fail_after(1):
                await watch(_FakeWs(stream), ConnectionLimits(ping_interval=0))
                await watch(_FakeWs(stream), ConnectionLimits(pong_timeout=0))
            assert isinstance(stream.connection, _FakeConnection)  # untouched
            assert not stream.pings


# -- real hypercorn, real sockets, the system's receive buffer ------------------------------


class _RawClient:
    """A WebSocket client over a raw socket with the system's default (autotuned) receive
    buffer: it reads only when told to."""

    def __init__(self, sock: trio.socket.SocketType, port: int) -> None:
        self.sock = sock
        self.port = port
        self.ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        self.pings_answered = 0
        self.closed = False

    async def start(self) -> None:
        await self.sock.connect(("127.0.0.1", self.port))
        await self.sock.send(self.ws.send(Request(host=f"127.0.0.1:{self.port}", target="/ws")))
        await self._until(AcceptConnection)
        start = {"type": "session.start", "v": 1, "sample_rate": 16000}
        await self.sock.send(self.ws.send(TextMessage(json.dumps(start))))
        await self._until(TextMessage)  # session.started
        await self.sock.send(
            self.ws.send(TextMessage(json.dumps({"type": "text", "v": 1, "text": "go"})))
        )

    async def _until(self, kind: type) -> None:
        while not any(isinstance(e, kind) for e in self.ws.events()):
            self.ws.receive_data(await self.sock.recv(65536))

    async def read(self, max_bytes: int) -> int:
        """Read at most `max_bytes` (what is there) and answer the pings in it, as RFC 6455
        clients do. Returns the bytes read."""
        data = await self.sock.recv(max_bytes)
        if not data:
            self.closed = True
            return 0
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, Ping):
                await self.sock.send(self.ws.send(event.response()))
                self.pings_answered += 1
            elif isinstance(event, CloseConnection):
                self.closed = True
        return len(data)


SILENCE_FRAME = b"\0\0" * 320  # 20 ms of microphone silence: the session is not idle


async def _speak_until_reset(client: _RawClient) -> bool:
    """Send 20 ms frames in real time (never reading); True once a send fails (reset)."""
    frame = client.ws.send(BytesMessage(SILENCE_FRAME))
    try:
        while True:
            await client.sock.send(frame)
            await trio.sleep(0.02)
    except OSError:
        return True


async def test_a_never_reading_client_with_the_default_buffer_is_reset_and_counted(
    autojump_clock: trio.testing.MockClock,  # the pong timeout and the streaming: virtual
) -> None:
    """...while a trio-websocket client of the same server, which reads, stays connected."""
    server = DemoServer(long_reply, limits=QUICK)  # stall_timeout 3600: only liveness can act
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, SessionStart(16000)) as reader:
                await reader.send(Text("go"))
                sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                with sock:
                    client = _RawClient(sock, port)
                    await client.start()
                    rcvbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                    assert await _speak_until_reset(client)
                # The reader lived through more than one pong timeout, its reply streaming.
                assert not reader.closed
                assert reader.audio(1)
            await settled(server, port)  # no server-side socket left open for either
    stats = server.sessions.stats
    assert stats.slow_consumers == 1
    assert not server.sessions.sessions
    assert rcvbuf >= 65536  # the system's buffer, not a tiny one that would stall writes


async def test_a_client_reading_at_half_the_rate_of_the_replies_stays_connected(
    autojump_clock: trio.testing.MockClock,  # 1.5 pong timeouts of reading: virtual
) -> None:
    server = DemoServer(long_reply, limits=QUICK)
    rate = 16_000  # bytes/s read: half of a reply's 16 kHz PCM16 (32 000 bytes/s, + headers)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            with sock:
                client = _RawClient(sock, port)
                await client.start()
                frame = client.ws.send(BytesMessage(SILENCE_FRAME))
                began = trio.current_time()
                read = 0
                while (now := trio.current_time()) < began + 1.5 * QUICK.pong_timeout:
                    await client.sock.send(frame)
                    budget = int(rate * (now - began)) - read
                    if budget > 0:
                        read += await client.read(budget)
                    await trio.sleep(0.02)
                    assert not client.closed
                assert client.pings_answered >= 3
            await settled(server, port)
    assert server.sessions.stats.slow_consumers == 0


# -- our trio-websocket clients and a ping that crosses their close ---------------------------


async def test_a_trio_websocket_client_whose_close_crosses_a_ping_closes_cleanly() -> None:
    """The server's ping arrives after the client sent its Close (bargein.testing applies
    trio_websocket_fix; without it the client's reader task raises LocalProtocolError)."""
    listener = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with listener, trio.fail_after(HANG_GUARD):
        await listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        async def server() -> None:
            conn, _ = await listener.accept()
            with conn:
                ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
                while True:
                    ws.receive_data(await conn.recv(65536))
                    if any(isinstance(e, Request) for e in ws.events()):
                        break
                await conn.send(ws.send(AcceptConnection()))
                data = await conn.recv(65536)  # the client's Close, not parsed yet
                await conn.send(ws.send(Ping(b"crossing")))  # in flight as it closes
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, CloseConnection):
                        await conn.send(ws.send(event.response()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(server)
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with trio.open_nursery() as client_tasks:
                ws = await wrap_client_stream(client_tasks, stream, f"127.0.0.1:{port}", "/ws")
                await ws.aclose()
            assert ws.closed is not None
