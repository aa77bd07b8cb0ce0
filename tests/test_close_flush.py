"""A connection that ends while its peer is behind still tells it how the turn and the session
ended: audio that has not gone out by 3/4 of `close_timeout` is dropped (counted) and the
control frames queued behind it (`turn.ended`, `session.ended`, an error) are sent in the rest
of it, before the close.

Found by bench/soak.py (issue 16): under CPU contention a server's writer sent one frame per
loop pass (~20 per second), a clean session ended with ~40 reply frames queued, the flush bound
(2 s) passed and the client got the close (1000) without `turn.ended` (`clean:closed:1000`).
"""

from __future__ import annotations

import trio
import trio.testing

from bargein.transports.outbound import OutboundQueue
from bargein.transports.protocol import ServerProtocol
from bargein.transports.websocket.connection import serve_connection
from bargein.transports.websocket.limits import ConnectionLimits
from bargein.transports.websocket.stats import ServerStats
from bargein.transports.websocket.transport import WebSocketTransport

SEND_S = 0.1  # one frame per 100 ms: the peer (or our loop) is slower than the reply plays


class SlowPeer:
    """A WebSocket whose every send takes `SEND_S`; it sends nothing and closes when told."""

    def __init__(self) -> None:
        self.sent: list[str | bytes] = []
        self.closed_with: tuple[int, float] | None = None
        self._gone = trio.Event()

    async def accept(self) -> None:
        await trio.lowlevel.checkpoint()

    async def receive(self) -> str | bytes:
        await self._gone.wait()
        raise ConnectionError("closed")

    async def send(self, data: str | bytes) -> None:
        await trio.sleep(SEND_S)
        self.sent.append(data)

    async def close(self, code: int, reason: str = "") -> None:
        self.closed_with = (code, trio.current_time())
        self._gone.set()
        await trio.lowlevel.checkpoint()


async def test_the_end_of_the_turn_and_the_session_reach_a_peer_that_is_behind(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer, stats, limits = SlowPeer(), ServerStats(), ConnectionLimits(close_timeout=2.0)
    started = trio.current_time()

    async def converse(protocol: ServerProtocol, transport: WebSocketTransport) -> None:
        for i in range(60):  # a 1.2 s reply, all queued when the session ends
            transport.queue.put_audio(b"a%d" % i, 1)
        transport.queue.put_control('{"type":"turn.ended"}')
        transport.queue.put_control('{"type":"session.ended"}')

    await serve_connection(peer, limits, stats, converse)
    audio = [f for f in peer.sent if isinstance(f, bytes)]
    assert peer.sent[-2:] == ['{"type":"turn.ended"}', '{"type":"session.ended"}']
    assert 0 < len(audio) < 60 and audio == [b"a%d" % i for i in range(len(audio))]
    assert stats.dropped_audio_frames == 60 - len(audio)  # the tail that could not go out
    assert peer.closed_with is not None and peer.closed_with[0] == 1000
    # Within the same bound as before: audio until 3/4 of close_timeout, then the control
    # frames (two sends), then the close.
    assert peer.closed_with[1] - started <= 2.0
    assert len(audio) == 15  # 1.5 s of 0.1 s sends


async def test_a_peer_that_keeps_up_gets_all_the_audio(
    autojump_clock: trio.testing.MockClock,
) -> None:
    peer, stats = SlowPeer(), ServerStats()

    async def converse(protocol: ServerProtocol, transport: WebSocketTransport) -> None:
        for i in range(10):  # 1 s to send: within close_timeout
            transport.queue.put_audio(b"a%d" % i, 1)
        transport.queue.put_control('{"type":"session.ended"}')

    await serve_connection(peer, ConnectionLimits(close_timeout=2.0), stats, converse)
    assert len(peer.sent) == 11 and peer.sent[-1] == '{"type":"session.ended"}'
    assert stats.dropped_audio_frames == 0


def test_drop_audio_keeps_the_control_frames_in_order() -> None:
    queue = OutboundQueue(max_audio=10, max_control=10)
    queue.put_audio(b"1", 1)
    queue.put_control("x")
    queue.put_audio(b"2", 1)
    queue.put_control("y")
    assert queue.drop_audio() == 2
    assert (queue.stats.queued_audio, queue.stats.dropped_audio, len(queue)) == (0, 2, 2)
    assert queue.drop_audio() == 0
    assert queue.stats.queued_control == 2
