"""The writes `RedisStore` queues for Redis, pure and synchronous (no I/O, no trio).

Callers queue writes without waiting; the store's write task `take`s everything queued as one
`WriteBatch`, puts it into one pipeline (`WriteBatch.fill`, one round trip) and, when Redis did
not answer, hands it back (`put_back`): conversation records, slot releases, event numbers and
chat records wait out an outage (bounded by `limit`, the oldest dropped and counted); monitoring
events are dropped, counted, and so are producer/follower marks (they are refreshed anyway).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from coredis.patterns.pipeline import Pipeline
from coredis.tokens import PureToken

from bargein.store.base import ConversationRecord, StoreHealth
from bargein.store.redis_layout import (
    EVENTS_CHANNEL,
    SESSIONS_KEY,
    conversation_key,
    seq_key,
    stream_key,
)
from bargein.transports.sse import Record


@dataclass(frozen=True, slots=True)
class WriteTtls:
    conversation: int  # seconds a conversation record (and its event number) is kept
    stream: int  # seconds a chat stream is kept after its last record
    capacity: int  # records a chat stream keeps (XADD MAXLEN)


@dataclass(frozen=True, slots=True)
class WriteBatch:
    conversations: tuple[ConversationRecord, ...]
    releases: tuple[str, ...]
    records: tuple[tuple[Record, bool], ...]  # (record, final)
    events: tuple[str, ...]  # RemoteEvent JSON for the events channel
    leases: tuple[tuple[str, float], ...]  # (key, ttl seconds)
    seqs: tuple[tuple[str, int], ...]  # (session, newest event seq)

    def __bool__(self) -> bool:
        return any((self.conversations, self.releases, self.records, self.events, self.leases,
                    self.seqs))  # fmt: skip

    def fill(self, pipe: Pipeline[str], ttls: WriteTtls) -> None:
        """Queue the batch's commands on `pipe`, in order."""
        for c in self.conversations:
            pipe.set(conversation_key(c.session_id), c.to_json(), ex=ttls.conversation)
        if self.releases:
            pipe.zrem(SESSIONS_KEY, list(self.releases))
        streams: set[str] = set()
        for record, final in self.records:
            key = stream_key(record.stream_id)
            streams.add(key)
            pipe.xadd(
                key,
                {"e": record.event, "d": record.data, "f": "1" if final else "0"},
                identifier=f"0-{record.seq}",
                trim_strategy=PureToken.MAXLEN,
                threshold=ttls.capacity,
            )
        for key in streams:
            pipe.expire(key, ttls.stream)
        for key, ttl in self.leases:
            pipe.set(key, "1", px=max(1, round(ttl * 1000)))
        for session_id, seq in self.seqs:
            pipe.set(seq_key(session_id), str(seq), ex=ttls.conversation)
        for event in self.events:
            pipe.publish(EVENTS_CHANNEL, event)


class WriteQueue:
    """What waits to be written; each kind keeps at most `limit` entries (oldest dropped,
    counted in `health.dropped`)."""

    def __init__(self, health: StoreHealth, limit: int) -> None:
        self.health = health
        self.limit = limit
        self._conversations: OrderedDict[str, ConversationRecord] = OrderedDict()
        self._releases: set[str] = set()
        self._records: deque[tuple[Record, bool]] = deque()
        self._events: deque[str] = deque()
        self._seqs: dict[str, int] = {}  # session -> newest event seq
        self._leases: dict[str, float] = {}  # key -> ttl seconds (producer / follower marks)

    def __bool__(self) -> bool:
        return any((self._conversations, self._releases, self._records, self._events,
                    self._leases, self._seqs))  # fmt: skip

    def conversation(self, record: ConversationRecord) -> None:
        self._conversations[record.session_id] = record
        self._conversations.move_to_end(record.session_id)
        while len(self._conversations) > self.limit:
            self._conversations.popitem(last=False)
            self.health.dropped["conversation"] += 1

    def pending_conversation(self, session_id: str) -> ConversationRecord | None:
        """The session's record if it is not written yet (or waits out an outage)."""
        return self._conversations.get(session_id)

    def release(self, session_id: str) -> None:
        self._releases.add(session_id)

    def cancel_release(self, session_id: str) -> None:
        self._releases.discard(session_id)

    def record(self, record: Record, *, final: bool) -> None:
        self._records.append((record, final))
        if len(self._records) > self.limit:
            self._records.popleft()  # a hole: a reader elsewhere is told `replay_gap`
            self.health.dropped["replay"] += 1

    def lease(self, key: str, ttl: float) -> None:
        self._leases[key] = ttl

    def seq(self, session_id: str, seq: int) -> None:
        self._seqs[session_id] = seq

    def pending_seq(self, session_id: str) -> int:
        """The newest event number not written yet (-1: none)."""
        return self._seqs.get(session_id, -1)

    def event(self, event_json: str) -> None:
        self._events.append(event_json)
        if len(self._events) > self.limit:
            self._events.popleft()
            self.health.dropped["monitoring"] += 1

    def take(self) -> WriteBatch:
        """Everything queued, in order; the queue is empty afterwards."""
        batch = WriteBatch(
            conversations=tuple(self._conversations.values()),
            releases=tuple(sorted(self._releases)),
            records=tuple(self._records),
            events=tuple(self._events),
            leases=tuple(self._leases.items()),
            seqs=tuple(self._seqs.items()),
        )
        self._conversations.clear()
        self._releases.clear()
        self._records.clear()
        self._events.clear()
        self._leases.clear()
        self._seqs.clear()
        return batch

    def put_back(self, batch: WriteBatch) -> None:
        """A batch Redis did not take: what waits out an outage goes back in front of what was
        queued since (newer queued versions win); a re-sent chat record that did get written is
        refused by Redis (ids only grow)."""
        for c in batch.conversations:
            self._conversations.setdefault(c.session_id, c)
        self._releases.update(batch.releases)
        for session_id, seq in batch.seqs:
            self._seqs[session_id] = max(seq, self._seqs.get(session_id, seq))
        self._records.extendleft(reversed(batch.records))
        while len(self._records) > self.limit:
            self._records.popleft()
            self.health.dropped["replay"] += 1
        self.health.dropped["monitoring"] += len(batch.events)
