"""The counters `/healthz` reports for the WebSocket server, and failures as one log line."""

from __future__ import annotations

import dataclasses
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class ServerStats:
    connections: int = 0
    connections_open: int = 0  # handlers still running (until the socket is really closed)
    # Frames read and dropped after the connection was done with, so it could close.
    drained_frames: int = 0
    sessions_started: int = 0
    sessions_resumed: int = 0
    takeovers: int = 0
    slow_consumers: int = 0
    handshake_timeouts: int = 0
    idle_timeouts: int = 0
    interrupts_stale: int = 0
    refused: Counter[str] = field(default_factory=Counter)
    # `unknown_session` / `bad_resume_secret`: a resume that started a new conversation instead.
    resume_refused: Counter[str] = field(default_factory=Counter)
    rejections: Counter[str] = field(default_factory=Counter)
    # Frames our side could not encode (a bug, logged), by message type.
    unsendable: Counter[str] = field(default_factory=Counter)
    dropped_audio_frames: int = 0

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for name in ("refused", "resume_refused", "rejections", "unsendable"):
            out[name] = dict(getattr(self, name))
        return out


def one_line(exc: BaseException) -> str:
    """`exc` in one line, with the first leaf of an exception group."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return f"{type(exc).__name__}: {exc}"[:500]
