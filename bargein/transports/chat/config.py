"""How the chat service paces and bounds its streams."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChatConfig:
    heartbeat_interval: float = 15.0  # seconds of quiet before a `: ping` comment
    orphan_timeout: float = 10.0  # seconds with no follower before the planner is cancelled
    retry_ms: int = 1000  # the SSE `retry:` a client reconnects after
    max_streams: int = 64  # streams kept for replay at once
    replay_capacity: int = 4096  # events each stream keeps for replay
    # Another worker's events reach its client before the shared store (writes are queued), so
    # a Last-Event-ID from that client may be ahead of the store for a moment.
    catch_up_timeout: float = 2.0  # seconds a resume elsewhere waits for the store to catch up
