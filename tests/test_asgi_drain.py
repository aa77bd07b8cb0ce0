"""After a WebSocket handler returns, the events the server still puts are read (issue 16): its
socket reader may be waiting to put a message that the disconnect overtook, and it closes the
socket only once that put went through. These stand-ins are not hypercorn, so the wrapper reads
(its fallback); with hypercorn it detaches the queue instead (tests/test_asgi_detach.py)."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from bargein.transports.websocket.asgi import drain_after_close


async def test_events_put_after_the_app_returned_are_read_so_the_putter_gets_through(
    autojump_clock: trio.testing.MockClock,
) -> None:
    send_channel, receive_channel = trio.open_memory_channel[dict[str, Any]](1)
    delivered: list[str] = []

    async def reader() -> None:  # hypercorn's socket reader, with three messages still to put
        for i in range(3):
            await send_channel.send({"type": "websocket.receive", "text": str(i)})
            delivered.append(str(i))

    async def app(scope: Any, receive: Any, send: Any) -> None:
        return  # quart stopped at the disconnect: nothing more is read by the app

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader)
        await drain_after_close(app)({"type": "websocket"}, receive_channel.receive, None)
        assert delivered == ["0", "1", "2"]  # every put went through
        nursery.cancel_scope.cancel()


async def test_draining_stops_when_nothing_comes_and_http_is_untouched(
    autojump_clock: trio.testing.MockClock,
) -> None:
    received = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        received += 1
        await trio.sleep_forever()
        raise AssertionError

    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    start = trio.current_time()
    await drain_after_close(app, idle=0.5)({"type": "websocket"}, receive, None)
    assert trio.current_time() - start == 0.5 and received == 1  # virtual time: one idle wait
    await drain_after_close(app)({"type": "http"}, receive, None)
    assert received == 1
