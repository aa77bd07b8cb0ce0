"""`MemoryStore`: the `Store` in this process's memory (the default: one process, no Redis).

Several servers in one process may share one `MemoryStore`; they then behave as workers of one
deployment (the tests use that), with the same semantics the Redis store has.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections import OrderedDict, deque
from dataclasses import dataclass, field

import trio

from bargein.runtime.broadcast import Broadcast, Subscription
from bargein.runtime.events import Event
from bargein.store.base import ConversationRecord, RemoteEvent, StoreHealth, StreamRead
from bargein.transports.sse import Record


@dataclass
class _Stream:
    records: deque[Record]
    finished: bool = False
    held_until: float = 0.0
    followed_until: dict[str, float] = field(default_factory=dict)  # worker -> until
    changed: trio.Event = field(default_factory=trio.Event)


# Everything the workers sharing one MemoryStore see; each worker has its own view on it.
@dataclass
class _Shared:
    conversations: OrderedDict[str, ConversationRecord] = field(default_factory=OrderedDict)
    sessions: dict[str, str] = field(default_factory=dict)  # session id -> worker
    seqs: dict[str, int] = field(default_factory=dict)  # session id -> newest event seq
    streams: OrderedDict[str, _Stream] = field(default_factory=OrderedDict)
    events: Broadcast[RemoteEvent] = field(default_factory=Broadcast)


class MemoryStore:
    """Conversations (the newest `remembered`), session slots, chat streams (the newest
    `max_streams`, each its last `capacity` records) and the event bus, in memory."""

    url = "memory:"

    def __init__(
        self,
        *,
        remembered: int = 4096,
        max_streams: int = 256,
        capacity: int = 4096,
        shared: MemoryStore | None = None,
    ) -> None:
        """`shared`: another worker's MemoryStore whose state this one shares."""
        self._shared: _Shared = shared._shared if shared is not None else _Shared()
        self._remembered = remembered
        self._max_streams = max_streams
        self._capacity = capacity
        self._worker_id = secrets.token_hex(6)
        self._health = StoreHealth("memory")

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def health(self) -> StoreHealth:
        return self._health

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        await trio.sleep_forever()

    # -- conversations ---------------------------------------------------------------------

    def save_conversation(self, record: ConversationRecord) -> None:
        kept = self._shared.conversations
        kept[record.session_id] = record
        kept.move_to_end(record.session_id)
        while len(kept) > self._remembered:
            kept.popitem(last=False)

    async def load_conversation(self, session_id: str) -> ConversationRecord | None:
        await trio.lowlevel.checkpoint()
        record = self._shared.conversations.get(session_id)
        newest = self._shared.seqs.get(session_id, -1)
        if record is None or record.next_seq > newest:
            return record
        return dataclasses.replace(record, next_seq=newest + 1)

    # -- the session limit -----------------------------------------------------------------

    async def acquire_session(self, session_id: str, limit: int) -> bool:
        await trio.lowlevel.checkpoint()
        sessions = self._shared.sessions
        if session_id not in sessions and len(sessions) >= limit:
            return False
        sessions[session_id] = self._worker_id
        return True

    def release_session(self, session_id: str) -> None:
        if self._shared.sessions.get(session_id) == self._worker_id:
            del self._shared.sessions[session_id]

    async def live_sessions(self) -> list[str]:
        await trio.lowlevel.checkpoint()
        return sorted(self._shared.sessions)

    # -- SSE replay ------------------------------------------------------------------------

    def _stream(self, stream_id: str) -> _Stream:
        streams = self._shared.streams
        stream = streams.get(stream_id)
        if stream is None:
            stream = streams[stream_id] = _Stream(deque(maxlen=self._capacity))
            while len(streams) > self._max_streams:
                streams.popitem(last=False)
        return stream

    def append_record(self, record: Record, *, final: bool) -> None:
        stream = self._stream(record.stream_id)
        stream.records.append(record)
        stream.finished = stream.finished or final
        stream.changed.set()
        stream.changed = trio.Event()

    def hold_stream(self, stream_id: str, ttl: float) -> None:
        self._stream(stream_id).held_until = trio.current_time() + ttl

    def mark_followed(self, stream_id: str, ttl: float) -> None:
        stream = self._shared.streams.get(stream_id)
        if stream is not None:
            stream.followed_until[self._worker_id] = trio.current_time() + ttl

    async def followed_elsewhere(self, stream_id: str) -> bool:
        await trio.lowlevel.checkpoint()
        stream = self._shared.streams.get(stream_id)
        now = trio.current_time()
        return stream is not None and any(
            until > now for worker, until in stream.followed_until.items()
            if worker != self._worker_id
        )  # fmt: skip

    async def read_records(self, stream_id: str, after: int, *, wait: float) -> StreamRead | None:
        stream = self._shared.streams.get(stream_id)
        if stream is None:
            await trio.lowlevel.checkpoint()
            return None
        last = stream.records[-1].seq if stream.records else 0
        if last <= after and not stream.finished:
            with trio.move_on_after(wait):
                await stream.changed.wait()
        else:
            await trio.lowlevel.checkpoint()
        records = tuple(r for r in stream.records if r.seq > after)
        return StreamRead(
            records,
            stream.records[-1].seq if stream.records else 0,
            stream.finished,
            stream.held_until > trio.current_time(),
        )

    # -- monitoring ------------------------------------------------------------------------

    def publish_event(self, event: Event) -> None:
        # A worker resuming the session after this one numbers on from here (unique ids).
        seqs = self._shared.seqs
        seqs[event.session] = event.seq
        if len(seqs) > self._remembered:
            del seqs[next(iter(seqs))]
        if self._shared.events._subscriptions:  # encode only when another worker listens
            self._shared.events.publish(RemoteEvent.of(self._worker_id, event))

    def remote_events(self, capacity: int) -> Subscription[RemoteEvent]:
        return _OthersOnly(self._shared.events, capacity, self._worker_id)


class _OthersOnly(Subscription[RemoteEvent]):
    """A subscription that leaves out this worker's own events (its monitors read them from
    its own hub)."""

    def __init__(self, owner: Broadcast[RemoteEvent], capacity: int, worker: str) -> None:
        super().__init__(owner, capacity)
        self._worker = worker
        owner._subscriptions.add(self)

    def put_nowait(self, item: RemoteEvent) -> bool:
        if item.worker == self._worker:
            return True
        return super().put_nowait(item)
