"""The trio adapter: one Realtime connection drives one `bargein.Session`.

`RealtimeServer` admits connections (a bound on how many run) and holds their counters; each
accepted socket is a `Connection` (connection.py). `realtime_session_config` is the session a
connection's settings ask for.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable

import trio

from bargein.actors.policy import InterruptionPolicy
from bargein.runtime.bus import EventHub
from bargein.session import SessionConfig
from bargein.transports.realtime.config import RealtimeSettings
from bargein.transports.realtime.connection import (
    MAX_AUDIO_FRAMES,
    MAX_CONTROL_FRAMES,
    MAX_SERVER_FRAME,
    STALL_TIMEOUT_S,
    TRANSCRIPT_WAIT_S,
    Connection,
    SlowConsumer,
)
from bargein.transports.realtime.input_audio import MAX_BUFFER_S, RATE
from bargein.transports.websocket import ConnectionLimits, EnginesFactory, WebSocketLike
from bargein.transports.websocket.limits import is_loopback

__all__ = [
    "MAX_AUDIO_FRAMES",
    "MAX_BUFFER_S",
    "MAX_CONTROL_FRAMES",
    "MAX_SERVER_FRAME",
    "RATE",
    "STALL_TIMEOUT_S",
    "TRANSCRIPT_WAIT_S",
    "Connection",
    "RealtimeServer",
    "RealtimeStats",
    "SlowConsumer",
    "realtime_session_config",
]


@dataclasses.dataclass(slots=True)
class RealtimeStats:
    connections: int = 0
    refused: Counter[str] = dataclasses.field(default_factory=Counter)
    errors: Counter[str] = dataclasses.field(default_factory=Counter)
    sessions_started: int = 0
    oversize_frames: int = 0
    slow_consumers: int = 0


class RealtimeServer:
    """Serves `/v1/realtime` connections; `handle(ws, model)` per accepted socket."""

    def __init__(
        self,
        engines_factory: EnginesFactory,
        *,
        hub: EventHub | None = None,
        max_connections: int = 32,
        shutting_down: trio.Event | None = None,
        session_config: Callable[[RealtimeSettings, str], SessionConfig] | None = None,
        limits: ConnectionLimits | None = None,  # only its ping/pong liveness applies here
        max_per_client: int = 8,
    ) -> None:
        self.engines_factory = engines_factory
        self.limits = limits or ConnectionLimits()
        self.hub = hub
        self.max_connections = max_connections
        self.shutting_down = trio.Event() if shutting_down is None else shutting_down
        self.session_config = session_config or realtime_session_config
        self.active = 0
        # Sessions of the server's other endpoints (/ws, calls) that share `max_connections`
        # with these (wired by the app).
        self.others_running: Callable[[], int] = lambda: 0
        self.stats = RealtimeStats()
        # Connections from one address at once (0: no limit), so one client cannot hold every
        # slot; loopback clients (a local app, load tests) are exempt unless `limit_loopback`.
        self.max_per_client = max_per_client
        self.limit_loopback = False
        self._per_client: Counter[str] = Counter()

    async def handle(self, ws: WebSocketLike, model: str | None = None) -> None:
        self.stats.connections += 1
        connection = Connection(self, ws, model)
        if self.active + self.others_running() >= self.max_connections:
            self.stats.refused["server_busy"] += 1
            await connection.refuse("server_busy", f"{self.max_connections} sessions running")
            return
        client = str(getattr(ws, "remote_addr", None) or "unknown")
        limited = self.limit_loopback or not is_loopback(client)
        if self.max_per_client and limited and self._per_client[client] >= self.max_per_client:
            self.stats.refused["too_many_sessions"] += 1
            await connection.refuse("too_many_sessions",
                                    f"{self.max_per_client} connections from this address")
            return
        self.active += 1
        self._per_client[client] += 1
        try:
            await connection.run()
        finally:
            self.active -= 1
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]


def realtime_session_config(settings: RealtimeSettings, session_id: str) -> SessionConfig:
    td = settings.turn_detection
    config = SessionConfig(
        input_rate=RATE,
        output_rate=RATE,
        session_id=session_id,
        # Realtime barge-in cancels at the start of speech (OpenAI's server VAD does).
        policy=InterruptionPolicy(mode="onset"),
        egress_lead_ms=100,
        # Clients often send a file faster than real time; a bigger burst takes it.
        ingress_burst_ms=10000,
        ingress_chunks=1000,
    )
    if td is not None:
        config = dataclasses.replace(config, vad=td.vad(), stt_preroll_ms=td.prefix_padding_ms)
    return config
