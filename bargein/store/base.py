"""What the workers of one deployment share, as a Protocol with two implementations.

`MemoryStore` (bargein/store/memory.py) keeps everything in this process: the default, and what
one process did before there was a store. `RedisStore` (bargein/store/redis.py) keeps it in
Redis or Valkey, so that any worker behind a proxy can resume a conversation, replay an SSE
stream, see every worker's sessions on its monitoring stream, and count sessions against one
limit (docs/deploy.md).

The hot paths never wait for the store: writes (`save_conversation`, `append_record`,
`publish_event`, `release_session`, `hold_stream`, `mark_followed`) are queued and written by the
store's own task; only the calls a request must wait for (`load_conversation`,
`acquire_session`, `read_records`, ...) are awaited, each bounded by the store's timeout, and
they raise `StoreUnavailable` when the store cannot answer.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from bargein.runtime.broadcast import Subscription
from bargein.runtime.events import Event
from bargein.runtime.history import ChatMessage
from bargein.transports.sse import Record

# The chat stream events after which a stream has ended (docs/web.md).
FINAL_EVENTS = frozenset({"done", "error"})


class StoreUnavailable(Exception):
    """The store did not answer (not reachable, timed out, or refused the command)."""


@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """What another worker needs to resume a conversation: its secret, the heard history and
    the numbers it continues from. Written at every turn end."""

    session_id: str
    secret: str
    history: tuple[ChatMessage, ...] = ()
    next_turn: int = 1
    next_seq: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {
                "session_id": self.session_id,
                "secret": self.secret,
                "history": [[m.role, m.content, m.interrupted] for m in self.history],
                "next_turn": self.next_turn,
                "next_seq": self.next_seq,
            },
            ensure_ascii=False,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> ConversationRecord:
        """Raises ValueError for anything that is not a record we wrote."""
        try:
            raw = json.loads(text)
            history = tuple(
                ChatMessage(role, str(content), bool(interrupted))
                for role, content, interrupted in raw["history"]
                if role in ("user", "assistant")
            )
            return cls(
                str(raw["session_id"]),
                str(raw["secret"]),
                history,
                int(raw["next_turn"]),
                int(raw["next_seq"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a conversation record: {exc}") from exc


@dataclass(frozen=True, slots=True)
class StreamRead:
    """One read of a chat stream: the records after the position asked for (in order, possibly
    with a hole the caller must detect), the stream's last sequence number, whether its final
    event was written, and whether its producer still holds it."""

    records: tuple[Record, ...]
    last_seq: int
    finished: bool
    producer_alive: bool


@dataclass(frozen=True, slots=True)
class RemoteEvent:
    """A session event published by another worker, already encoded as the monitoring stream
    sends it."""

    worker: str
    type: str
    session: str
    seq: int
    data: str  # the event's JSON

    @classmethod
    def of(cls, worker: str, event: Event) -> RemoteEvent:
        data = json.dumps(event.to_json(), default=str, ensure_ascii=False)
        return cls(worker, event.type.value, event.session, event.seq, data)

    def to_json(self) -> str:
        return json.dumps([self.worker, self.type, self.session, self.seq, self.data])

    @classmethod
    def from_json(cls, text: str) -> RemoteEvent:
        worker, type_, session, seq, data = json.loads(text)
        return cls(str(worker), str(type_), str(session), int(seq), str(data))


@dataclass
class StoreHealth:
    """Whether the store answers now, and every failure and drop, counted (`/healthz`)."""

    backend: str
    available: bool = True
    errors: Counter[str] = field(default_factory=Counter)  # by operation
    dropped: Counter[str] = field(default_factory=Counter)  # queued writes given up, by kind
    outages: int = 0
    _changed: trio.Event = field(default_factory=trio.Event)

    def failed(self, operation: str) -> None:
        self.errors[operation] += 1
        if self.available:
            self.available = False
            self.outages += 1
            self._wake()

    def recovered(self) -> None:
        if not self.available:
            self.available = True
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def wait_changed(self) -> None:
        await self._changed.wait()

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "available": self.available,
            "outages": self.outages,
            "errors": dict(self.errors),
            "dropped": dict(self.dropped),
        }


class Store(Protocol):
    """The state the workers of a deployment share (docs/deploy.md)."""

    @property
    def worker_id(self) -> str:
        """This process's id, unique across the workers sharing the store."""
        ...

    @property
    def health(self) -> StoreHealth: ...

    @property
    def url(self) -> str:
        """Where the store is, without any password (for messages)."""
        ...

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Connect and write the queued writes until cancelled. Raises `StoreUnavailable` before
        `task_status.started()` when the store cannot be reached at start."""
        ...

    # -- conversations ---------------------------------------------------------------------

    def save_conversation(self, record: ConversationRecord) -> None:
        """Queue `record` (the newest record of a conversation wins; kept and retried while
        the store is unavailable)."""
        ...

    async def load_conversation(self, session_id: str) -> ConversationRecord | None: ...

    # -- the session limit -----------------------------------------------------------------

    async def acquire_session(self, session_id: str, limit: int) -> bool:
        """Take one of `limit` slots across all workers for `session_id`; False when all are
        taken. A worker that dies loses its slots after the lease (docs/deploy.md)."""
        ...

    def release_session(self, session_id: str) -> None: ...

    async def live_sessions(self) -> list[str]:
        """The sessions holding a slot, on every worker."""
        ...

    # -- SSE replay ------------------------------------------------------------------------

    def append_record(self, record: Record, *, final: bool) -> None:
        """Queue a chat stream event (in order; bounded: the newest `capacity` of a stream)."""
        ...

    def hold_stream(self, stream_id: str, ttl: float) -> None:
        """The producer of `stream_id` is alive for `ttl` seconds more."""
        ...

    def mark_followed(self, stream_id: str, ttl: float) -> None:
        """A reader on this worker follows `stream_id` for `ttl` seconds more."""
        ...

    async def followed_elsewhere(self, stream_id: str) -> bool: ...

    async def read_records(self, stream_id: str, after: int, *, wait: float) -> StreamRead | None:
        """The records of `stream_id` after `after`, waiting up to `wait` seconds for one when
        there is none yet; None for a stream the store does not have."""
        ...

    # -- monitoring ------------------------------------------------------------------------

    def publish_event(self, event: Event) -> None:
        """Every session event of this worker, for the other workers' monitors."""
        ...

    def remote_events(self, capacity: int) -> Subscription[RemoteEvent]:
        """The other workers' events from now on (drop oldest beyond `capacity`, counted)."""
        ...
