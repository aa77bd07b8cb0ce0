"""`GET /api/monitoring/stream`: every session's events as SSE, a live operator's view.

No replay: a monitor that falls behind loses the oldest events and is told how many
(`dropped`). When the server stops, the stream forwards what is already queued and ends with a
final `error` event `shutting_down` (the same last event a chat stream gets), so a reader never
sees a response cut mid-event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Final

import trio

from bargein.runtime.broadcast import Subscription
from bargein.runtime.bus import EventHub
from bargein.runtime.events import Event
from bargein.transports.sse import encode_comment, encode_event, encode_retry, format_event_id

SUBSCRIPTION_CAPACITY: Final = 4096
_QUIET: Final = object()  # nothing happened for a heartbeat interval


async def _next_event(
    events: Subscription[Event], stopping: trio.Event, quiet: float
) -> Event | object | None:
    """The next event; `_QUIET` after `quiet` seconds without one; None once `stopping` is set.

    A helper coroutine, not inline in the generator: its nursery must not span a `yield`.
    """
    if stopping.is_set():
        return None
    result: Event | object | None = None

    async def get() -> None:
        nonlocal result
        with trio.move_on_after(quiet):
            result = await events.get()
            nursery.cancel_scope.cancel()
            return
        result = _QUIET
        nursery.cancel_scope.cancel()

    async def stop() -> None:
        await stopping.wait()
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(get)
        nursery.start_soon(stop)
    return result


async def monitor_stream(
    hub: EventHub,
    live_sessions: Callable[[], list[str]],
    stopping: trio.Event,
    *,
    heartbeat: float,
    retry_ms: int = 2000,
) -> AsyncIterator[bytes]:
    """The response body of one monitor."""
    with hub.subscribe(SUBSCRIPTION_CAPACITY) as events:
        yield encode_retry(retry_ms)
        yield encode_event(json.dumps({"sessions": live_sessions()}), event="hello")
        reported = 0
        while True:
            item = await _next_event(events, stopping, heartbeat)
            if item is _QUIET:
                yield encode_comment("ping")
                continue
            if item is None:  # stopping: what is queued already, then the final event
                while len(events):
                    yield _encode(await events.get())
                final = {"code": "shutting_down", "message": "server stopping"}
                yield encode_event(json.dumps(final), event="error")
                return
            if events.dropped > reported:
                dropped = {"dropped": events.dropped - reported}
                reported = events.dropped
                yield encode_event(json.dumps(dropped), event="dropped")
            assert isinstance(item, Event)
            yield _encode(item)


def _encode(event: Event) -> bytes:
    data = json.dumps(event.to_json(), default=str, ensure_ascii=False)
    return encode_event(data, event=event.type.value, id=format_event_id(event.session, event.seq))
