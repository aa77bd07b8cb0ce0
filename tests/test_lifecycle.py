"""Connection lifecycle over real sockets (issue 16): a connection the server is done with is
drained until it is really closed (no server socket left in CLOSE-WAIT), also
when the client keeps sending after a fatal error or disconnects abruptly mid-reply."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
import trio
import trio.testing
from trio_websocket import ConnectionClosed

from bargein.engines.base import Engines
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import connect, running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import (
    AudioIn,
    ErrorMessage,
    OptionValue,
    SessionStart,
    SessionStarted,
    TurnStarted,
)
from bargein.transports.websocket import ConnectionLimits

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound


def long_reply(_: Mapping[str, OptionValue]) -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner(["la " * 300]), ScriptedTts(16000))


# /proc/net/tcp states in which the server still holds a connection it should have closed.
_OPEN_STATES = {"01": "ESTABLISHED", "08": "CLOSE_WAIT"}


def server_side_open(port: int) -> list[str]:
    """States of server-side sockets on `port` (not the listener) that are not closed yet."""
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            for line in list(lines)[1:]:
                local, state = line.split()[1], line.split()[3]
                if int(local.rsplit(":", 1)[1], 16) == port and state in _OPEN_STATES:
                    states.append(_OPEN_STATES[state])
    return states


async def settled(server: DemoServer, port: int) -> None:
    """Wait until every handler returned and the server closed every socket of `port`."""
    # Polled: the kernel's socket table has no event to wait on.
    while True:
        if not (server.sessions.stats.connections_open or server_side_open(port)):
            return
        await trio.sleep(0.05)


async def test_frames_after_a_fatal_error_are_drained_and_the_socket_closes() -> None:
    server = DemoServer(long_reply)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            for _ in range(3):
                async with connect(port, SessionStart(16000)) as client:
                    junk = json.dumps({"type": "nope", "v": 1})
                    try:
                        # 101 rejections end it (too_many_errors); the rest are in flight.
                        for _ in range(160):
                            await client.send_raw(junk)
                    except ConnectionClosed:
                        pass
                    await client.wait_closed()
                    assert client.close_code == 1008
            await settled(server, port)
    assert server.sessions.stats.refused == {} and server.sessions.stats.drained_frames > 0


async def test_abrupt_disconnects_mid_reply_leave_no_fds() -> None:
    server = DemoServer(long_reply)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            for _ in range(5):
                stream = await trio.open_tcp_stream("127.0.0.1", port)
                async with trio.open_nursery() as nursery:
                    from trio_websocket import wrap_client_stream

                    ws = await wrap_client_stream(nursery, stream, f"127.0.0.1:{port}", "/ws")
                    await ws.send_message(json.dumps({"type": "session.start", "v": 1,
                                                      "sample_rate": 16000}))  # fmt: skip
                    await ws.send_message(json.dumps({"type": "text", "v": 1, "text": "go"}))
                    while TurnStarted.TYPE not in str(await ws.get_message()):
                        pass
                    for _ in range(50):  # frames in flight when the client vanishes
                        await ws.send_message(b"\0\0" * 320)
                    await stream.aclose()  # no close handshake
                    nursery.cancel_scope.cancel()
            await settled(server, port)
    assert not server.sessions.sessions


async def test_an_idle_session_is_ended_and_counted_an_active_one_is_not(
    autojump_clock: trio.testing.MockClock,  # the timeout and the 3 s of streaming: virtual
) -> None:
    server = DemoServer(long_reply, limits=ConnectionLimits(idle_timeout=1.0))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with (
                connect(port, SessionStart(16000)) as idle,
                connect(port, SessionStart(16000)) as talking,
            ):
                # One streams (silent) microphone audio; the other sends nothing.
                for _ in range(60):
                    await talking.send(AudioIn(np.zeros(320, np.int16)))
                    await trio.sleep(0.05)
                await idle.wait_closed()
                assert not talking.closed
            await settled(server, port)
    errors = idle.of(ErrorMessage)
    assert [(e.code, e.fatal) for e in errors] == [("idle_timeout", True)]
    assert idle.close_code == 1008
    assert server.sessions.stats.idle_timeouts == 1


async def test_sessions_per_client_address_are_limited_and_counted() -> None:
    server = DemoServer(long_reply)
    server.sessions.max_sessions_per_client = 2
    server.sessions.limit_loopback = True  # the test's clients are all on 127.0.0.1
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, SessionStart(16000)), connect(port, SessionStart(16000)):
                async with connect(port) as third:
                    await third.send(SessionStart(16000))
                    await third.wait_closed()
            async with connect(port, SessionStart(16000)) as later:  # slots are freed
                assert later.of(SessionStarted)
    errors = third.of(ErrorMessage)
    assert [(e.code, e.fatal) for e in errors] == [("too_many_sessions", True)]
    assert third.close_code == 1013
    assert server.sessions.stats.refused == {"too_many_sessions": 1}
