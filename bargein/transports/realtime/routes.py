"""`/v1/realtime` on the demo app: the same access layer as `/ws`, then `RealtimeServer`."""

from __future__ import annotations

from typing import Protocol

from quart import websocket
from quart_trio import QuartTrio

from bargein.runtime.bus import EventHub
from bargein.transports.access import AccessPolicy, Refusal
from bargein.transports.realtime.errors import error_event
from bargein.transports.realtime.server import RealtimeServer
from bargein.transports.websocket import EnginesFactory, SessionServer

PATH = "/v1/realtime"


class Host(Protocol):
    """What the app (`DemoServer`) shares with the Realtime endpoint."""

    policy: AccessPolicy  # rebuilt when the server binds: read at each connection
    engines_factory: EnginesFactory
    hub: EventHub
    sessions: SessionServer


def add_realtime_routes(app: QuartTrio, host: Host) -> RealtimeServer:
    """Route `ws://HOST/v1/realtime?model=…` (Authorization: Bearer <token>); unknown query
    parameters are ignored. Returns the server (its `stats` count connections and errors)."""
    server = RealtimeServer(
        host.engines_factory,
        hub=host.hub,
        max_connections=host.sessions.max_sessions,
        shutting_down=host.sessions.shutting_down,
        limits=host.sessions.limits,
    )

    @app.websocket(PATH)
    async def realtime() -> None:
        socket = websocket._get_current_object()  # type: ignore[attr-defined]
        decision = host.policy.websocket(
            host=socket.headers.get("Host"),
            origin=socket.headers.get("Origin"),
            authorization=socket.headers.get("Authorization"),
            subprotocols=socket.requested_subprotocols,
        )
        if not isinstance(decision, Refusal) and not decision.authorized:
            # Realtime has no in-band token: the header (or subprotocol) is the only way.
            decision = Refusal(401, "unauthorized", "Authorization: Bearer <token> is required")
        if isinstance(decision, Refusal):
            server.stats.refused[decision.code] += 1
            await socket.accept()
            await _refuse(socket, decision)
            return
        # The per-address bound is /ws's (read at each connection: a benchmark lifts it).
        server.max_per_client = host.sessions.max_sessions_per_client
        server.limit_loopback = host.sessions.limit_loopback
        await socket.accept(subprotocol=decision.subprotocol)
        model = socket.args.get("model")
        await server.handle(socket, model if isinstance(model, str) else None)

    return server


async def _refuse(socket: object, refusal: Refusal) -> None:
    import json

    import trio

    frame = json.dumps({"event_id": "event_0", **error_event(refusal.code, refusal.message)})
    with trio.move_on_after(2.0):
        try:
            await socket.send(frame)  # type: ignore[attr-defined]
            await socket.close(1008, refusal.code)  # type: ignore[attr-defined]
        except Exception:  # the peer left already
            pass
