"""The state the workers of a deployment share: `Store` (base.py), in memory (the default) or in
Redis/Valkey (docs/deploy.md)."""

from __future__ import annotations

from bargein.store.base import (
    ConversationRecord,
    RemoteEvent,
    Store,
    StoreHealth,
    StoreUnavailable,
    StreamRead,
)
from bargein.store.memory import MemoryStore

__all__ = [
    "ConversationRecord",
    "MemoryStore",
    "RemoteEvent",
    "Store",
    "StoreHealth",
    "StoreUnavailable",
    "StreamRead",
    "store_from_url",
]


def store_from_url(url: str | None) -> Store:
    """`None` or ``memory:`` → a `MemoryStore`; ``redis://HOST:PORT[/DB]`` (or ``rediss://``,
    ``unix://PATH``) → a `RedisStore`. Raises ValueError for anything else."""
    if url is None or url in ("memory", "memory:"):
        return MemoryStore()
    from bargein.store.redis import RedisStore  # imports coredis only when asked for

    return RedisStore(url)
