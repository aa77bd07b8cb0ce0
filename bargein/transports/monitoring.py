"""`GET /api/monitoring/stream`: every session's events as SSE, a live operator's view.

No replay: a monitor that falls behind loses the oldest events and is told how many
(`dropped`). When the server stops, the stream forwards what is already queued and ends with a
final `error` event `shutting_down` (the same last event a chat stream gets), so a reader never
sees a response cut mid-event.

With a shared store (docs/deploy.md) the stream also carries the other workers' sessions: this
worker's events come from its own hub, the others' from the store's bus. When the store stops
answering the stream says so (`event: store`, `available: false`, counted) and goes on with this
worker's sessions; when it answers again, `available: true`, and the others' events resume.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Final

import trio

from bargein.runtime.broadcast import Subscription
from bargein.runtime.bus import EventHub
from bargein.runtime.events import Event
from bargein.store import MemoryStore, RemoteEvent, Store, StoreUnavailable
from bargein.transports.sse import encode_comment, encode_event, encode_retry, format_event_id

SUBSCRIPTION_CAPACITY: Final = 4096
_HEALTH: Final = object()  # the store became unavailable, or available again


async def _next_items(
    local: Subscription[Event],
    remote: Subscription[RemoteEvent],
    store: Store,
    stopping: trio.Event,
    quiet: float,
) -> list[Event | RemoteEvent | object | None]:
    """What happened next: events of either source (both, if both came in the same instant:
    nothing taken from a queue is lost), `_HEALTH` when the store's availability changed, None
    once `stopping` is set; empty after `quiet` seconds of nothing.

    A helper coroutine, not inline in the generator: its nursery must not span a `yield`.
    """
    if stopping.is_set():
        return [None]
    happened: list[Event | RemoteEvent | object | None] = []

    def racer(
        wait: Callable[[], Awaitable[object]], value: object = None
    ) -> Callable[[], Awaitable[None]]:
        async def race() -> None:
            got = await wait()
            happened.append(got if value is None else value)
            nursery.cancel_scope.cancel()

        return race

    async def stop() -> None:
        await stopping.wait()
        happened.append(None)
        nursery.cancel_scope.cancel()

    with trio.move_on_after(quiet):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(racer(local.get))
            nursery.start_soon(racer(remote.get))
            nursery.start_soon(racer(store.health.wait_changed, _HEALTH))
            nursery.start_soon(stop)
    return happened


async def monitor_stream(
    hub: EventHub,
    live_sessions: Callable[[], list[str]],
    stopping: trio.Event,
    *,
    heartbeat: float,
    retry_ms: int = 2000,
    store: Store | None = None,
) -> AsyncIterator[bytes]:
    """The response body of one monitor."""
    shared = store if store is not None else MemoryStore()
    with (
        hub.subscribe(SUBSCRIPTION_CAPACITY) as events,
        shared.remote_events(SUBSCRIPTION_CAPACITY) as remote,
    ):
        yield encode_retry(retry_ms)
        sessions = set(live_sessions())
        try:
            sessions.update(await shared.live_sessions())
        except StoreUnavailable:
            pass  # the health event below says so
        yield encode_event(json.dumps({"sessions": sorted(sessions)}), event="hello")
        if not shared.health.available:
            yield _health(shared)
        reported = 0
        while True:
            happened = await _next_items(events, remote, shared, stopping, heartbeat)
            if not happened:
                yield encode_comment("ping")
                continue
            happened.sort(key=lambda item: item is None)  # the final event goes last
            for item in happened:
                if item is _HEALTH:
                    yield _health(shared)
                    continue
                if item is None:  # stopping: what is queued already, then the final event
                    while len(events):
                        yield _encode(await events.get())
                    final = {"code": "shutting_down", "message": "server stopping"}
                    yield encode_event(json.dumps(final), event="error")
                    return
                dropped = events.dropped + remote.dropped
                if dropped > reported:
                    yield encode_event(json.dumps({"dropped": dropped - reported}), event="dropped")
                    reported = dropped
                if isinstance(item, RemoteEvent):
                    yield encode_event(
                        item.data, event=item.type, id=format_event_id(item.session, item.seq)
                    )
                else:
                    assert isinstance(item, Event)
                    yield _encode(item)


def _health(store: Store) -> bytes:
    health = store.health
    data = {"available": health.available, "outages": health.outages,
            "errors": sum(health.errors.values())}  # fmt: skip
    return encode_event(json.dumps(data), event="store")


def _encode(event: Event) -> bytes:
    data = json.dumps(event.to_json(), default=str, ensure_ascii=False)
    return encode_event(data, event=event.type.value, id=format_event_id(event.session, event.seq))
