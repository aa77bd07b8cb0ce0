"""One WebSocket connection around its session: accept, bound what the kernel holds unsent,
run the writer and the liveness watch while the session converses, then flush, drain and close.

The session side (admission, resumption, running the session) is `SessionServer` (server.py);
this is the same for every connection, whatever its session did. A peer that stops reading is
closed under its stuck write and counted (`slow_consumers`); after the session the peer's frames
are read and dropped until its close arrives, so hypercorn's queues never fill (a socket left in
CLOSE-WAIT); the close itself is shielded and bounded.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from functools import partial

import trio

from bargein.transports.protocol import ErrorCode, ServerProtocol
from bargein.transports.websocket import liveness
from bargein.transports.websocket.inbound import drain
from bargein.transports.websocket.limits import ConnectionLimits, close_code
from bargein.transports.websocket.stats import ServerStats, one_line
from bargein.transports.websocket.tcp import abort, connection_socket, limit_unsent
from bargein.transports.websocket.transport import SlowConsumer, WebSocketLike, WebSocketTransport

log = logging.getLogger("bargein.transports")

Converse = Callable[[ServerProtocol, WebSocketTransport], Awaitable[None]]


async def serve_connection(
    ws: WebSocketLike, limits: ConnectionLimits, stats: ServerStats, converse: Converse
) -> None:
    """Serve the connection `ws` until `converse` (the session) returned and the connection is
    closed; counts its rejections, unsendable frames, dropped audio and a slow consumer."""
    protocol = ServerProtocol(max_rejections=limits.max_rejections)
    transport = WebSocketTransport(protocol, limits)
    await ws.accept()
    sock = connection_socket(ws)
    if sock is not None and limits.max_unsent_bytes:
        limit_unsent(sock, limits.max_unsent_bytes)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(
                transport.run_writer, ws.send, None if sock is None else partial(abort, sock)
            )
            nursery.start_soon(liveness.watch, ws, limits)  # pings: is it reading?
            await converse(protocol, transport)
            transport.close()
            # Nobody reads the peer's frames any more: drain them, or the server's inbound
            # queues fill and the peer's close is never seen (a socket left in CLOSE-WAIT).
            nursery.start_soon(drain, ws, stats)
            # The peer may be behind (or our loop: a saturated server writes a frame per pass):
            # audio that has not gone out by 3/4 of the bound is dropped (counted), so how the
            # turn and the session ended, queued behind it, still goes out within the bound.
            deadline = trio.current_time() + limits.close_timeout
            with trio.move_on_at(deadline - limits.close_timeout / 4):
                await transport.wait_drained()
            transport.queue.drop_audio()  # nothing left once drained
            with trio.move_on_at(deadline):
                await transport.wait_drained()
            nursery.cancel_scope.cancel()
    except* SlowConsumer as group:
        stats.slow_consumers += 1
        transport.fatal_code = ErrorCode.SLOW_CONSUMER.value
        log.info("closing a slow consumer: %s", one_line(group))
    finally:
        stats.rejections.update(protocol.rejections)
        stats.unsendable.update(transport.unsendable)
        stats.dropped_audio_frames += transport.stats.dropped_audio
    code = transport.fatal_code
    # Drain until the peer's close or disconnect arrives (not shielded: quart cancels us
    # when the peer is gone, which is what we wait for), at most `drain_timeout`. The close
    # itself is shielded and bounded: it must go out even as the peer leaves.
    with trio.move_on_after(limits.drain_timeout):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(drain, ws, stats, nursery.cancel_scope)
            with trio.CancelScope(shield=True), trio.move_on_after(limits.close_timeout):
                try:
                    await ws.close(close_code(code), code or "")
                except Exception as exc:  # the peer is gone already: nothing to tell it
                    log.debug("websocket close failed: %r", exc)
                    nursery.cancel_scope.cancel()
