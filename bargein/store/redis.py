"""`RedisStore`: the `Store` in Redis or Valkey, through coredis (native trio via anyio).

Keys (prefix ``bargein:``):

    conv:<session>            a conversation record (JSON), EX `conversation_ttl`
    sessions                  sorted set: session id -> lease expiry (ms, Redis server clock)
    chat:<stream>             a Redis Stream: entry id ``0-<seq>``, fields e (event), d (data),
                              f ("1" on the final event); XADD MAXLEN = `capacity`, EX `stream_ttl`
    chat:<stream>:producer    set while the producing worker is alive (PX)
    chat:<stream>:followed    set while a reader on another worker follows it (PX)
    events (channel)          every worker's session events, PUBLISHed, for the monitors

Writes are queued and written by one task in pipelines (one round trip per wake-up, in order).
While Redis is unreachable, conversation records, slot releases and chat records wait (bounded)
and are written when it answers again; monitoring events are dropped, counted. A probe pings
every `probe_interval` seconds, so an outage is noticed and its end acted on within one.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit, urlunsplit

import anyio
import coredis
import trio
from coredis.exceptions import RedisError
from coredis.retry import ExponentialBackoffRetryPolicy
from coredis.tokens import PureToken

from bargein.runtime.broadcast import Broadcast, Subscription
from bargein.runtime.events import Event
from bargein.store.base import (
    ConversationRecord,
    RemoteEvent,
    StoreHealth,
    StoreUnavailable,
    StreamRead,
)
from bargein.store.memory import _OthersOnly
from bargein.transports.sse import Record

T = TypeVar("T")

# coredis logs every retry at INFO: during an outage that is a line per command per worker.
# The outage is ours to report (StoreHealth, the monitors' `store` event), once.
logging.getLogger("coredis").setLevel(logging.WARNING)

PREFIX: Final = "bargein:"
EVENTS_CHANNEL: Final = PREFIX + "events"
SESSIONS_KEY: Final = PREFIX + "sessions"
# What "Redis did not answer" looks like from here (coredis runs on anyio).
_FAILURES = (
    RedisError,
    OSError,
    trio.TooSlowError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)

# Slots are leases on the Redis server's clock, so workers on machines whose clocks differ agree.
_ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and
   redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
return 1
"""
_RENEW = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[1]), ARGV[i])
end
return #ARGV - 1
"""
_LIVE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def _seq(identifier: str) -> int:
    return int(str(identifier).partition("-")[2])


class RedisStore:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 1.0,
        probe_interval: float = 1.0,
        conversation_ttl: int = 24 * 3600,
        capacity: int = 4096,
        stream_ttl: int = 3600,
        session_lease: float = 15.0,
        queue: int = 8192,
    ) -> None:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a redis:// URL: {redacted(url)}")
        self._url = url
        self.timeout = timeout
        self.probe_interval = probe_interval
        self.conversation_ttl = conversation_ttl
        self.capacity = capacity
        self.stream_ttl = stream_ttl
        self.session_lease = session_lease
        self._worker_id = secrets.token_hex(6)
        self._health = StoreHealth("redis")
        self._client: coredis.Redis[str] | None = None
        # Queued writes (see the module docstring for what waits out an outage).
        self._conversations: OrderedDict[str, ConversationRecord] = OrderedDict()
        self._releases: set[str] = set()
        self._records: deque[tuple[Record, bool]] = deque()
        self._events: deque[str] = deque()
        self._seqs: dict[str, int] = {}  # session -> newest event seq
        self._leases: dict[str, float] = {}  # key -> ttl seconds (producer / follower marks)
        self._queue = queue
        self._dirty = trio.Event()
        self._flushing = False
        self._local_sessions: set[str] = set()
        self._remote = Broadcast[RemoteEvent]()

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def health(self) -> StoreHealth:
        return self._health

    @property
    def url(self) -> str:
        return redacted(self._url)

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        started = False
        while True:
            client: coredis.Redis[str] = coredis.Redis.from_url(
                self._url, decode_responses=True, connect_timeout=self.timeout
            )
            failure: BaseException | None = None
            # coredis wraps the client's lifetime in an anyio task group, which wraps errors in
            # groups: the start-up failure is raised after it has closed; a failure of the
            # client's own tasks later (an outage it did not ride out) is counted and the
            # client made anew, never the end of the server.
            try:
                async with client:
                    try:
                        with trio.fail_after(self.timeout):
                            await client.ping()
                    except _FAILURES as exc:
                        failure = exc
                    if failure is None or started:
                        await self._serve_client(client, task_status if not started else None)
            except* _FAILURES:
                self._health.failed("client")
            if failure is not None and not started:
                reason = str(failure) or type(failure).__name__
                raise StoreUnavailable(f"cannot reach the store at {self.url}: {reason}")
            started = True
            await trio.sleep(self.probe_interval)

    async def _serve_client(
        self, client: coredis.Redis[str], task_status: trio.TaskStatus[None] | None
    ) -> None:
        self._client = client
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop)
                nursery.start_soon(self._probe_loop)
                nursery.start_soon(self._lease_loop)
                nursery.start_soon(self._subscribe_loop)
                if task_status is not None:
                    task_status.started()
        finally:
            # What is queued at shutdown (the last conversation records, releases) still
            # goes out, bounded.
            with trio.CancelScope(shield=True), trio.move_on_after(self.timeout):
                try:
                    await self._flush()
                except _FAILURES:
                    self._health.failed("write")
            self._client = None

    def _wake(self) -> None:
        self._dirty.set()

    @property
    def writes_pending(self) -> bool:
        """Queued writes not yet acknowledged by Redis (tests wait for them)."""
        queued = (self._conversations, self._releases, self._records, self._events,
                  self._leases, self._seqs)  # fmt: skip
        return self._flushing or any(queued)

    async def _write_loop(self) -> None:
        while True:
            await self._dirty.wait()
            self._dirty = trio.Event()
            if not self._health.available:
                continue  # the probe wakes us when Redis answers again
            try:
                await self._flush()
            except _FAILURES:
                self._health.failed("write")

    async def _flush(self) -> None:
        self._flushing = True
        try:
            await self._flush_all()
        finally:
            self._flushing = False

    async def _flush_all(self) -> None:
        client = self._client
        if client is None:
            return
        while True:
            conversations = list(self._conversations.values())
            releases = sorted(self._releases)
            records = list(self._records)
            events = list(self._events)
            leases = dict(self._leases)
            seqs = dict(self._seqs)
            if not (conversations or releases or records or events or leases or seqs):
                return
            self._seqs.clear()
            self._conversations.clear()
            self._releases.clear()
            self._records.clear()
            self._events.clear()
            self._leases.clear()
            try:
                with trio.fail_after(self.timeout):
                    async with client.pipeline(transaction=False, raise_on_error=False) as pipe:
                        for c in conversations:
                            pipe.set(
                                PREFIX + "conv:" + c.session_id,
                                c.to_json(),
                                ex=self.conversation_ttl,
                            )
                        if releases:
                            pipe.zrem(SESSIONS_KEY, releases)
                        streams: set[str] = set()
                        for record, final in records:
                            key = PREFIX + "chat:" + record.stream_id
                            streams.add(key)
                            pipe.xadd(
                                key,
                                {"e": record.event, "d": record.data, "f": "1" if final else "0"},
                                identifier=f"0-{record.seq}",
                                trim_strategy=PureToken.MAXLEN,
                                threshold=self.capacity,
                            )
                        for key in streams:
                            pipe.expire(key, self.stream_ttl)
                        for key, ttl in leases.items():
                            pipe.set(key, "1", px=max(1, round(ttl * 1000)))
                        for session_id, seq in seqs.items():
                            pipe.set(
                                PREFIX + "conv:" + session_id + ":seq",
                                str(seq),
                                ex=self.conversation_ttl,
                            )
                        for event in events:
                            pipe.publish(EVENTS_CHANNEL, event)
            except _FAILURES:
                # Put back what waits out an outage (newer queued versions win); a re-sent
                # chat record that did get written is refused by Redis (ids only grow).
                for c in conversations:
                    self._conversations.setdefault(c.session_id, c)
                self._releases.update(releases)
                for session_id, seq in seqs.items():
                    self._seqs[session_id] = max(seq, self._seqs.get(session_id, seq))
                self._records.extendleft(reversed(records))
                while len(self._records) > self._queue:
                    self._records.popleft()
                    self._health.dropped["replay"] += 1
                self._health.dropped["monitoring"] += len(events)
                raise

    async def _probe_loop(self) -> None:
        while True:
            await trio.sleep(self.probe_interval)
            try:
                await self._call(lambda c: c.ping(), "probe")
            except StoreUnavailable:
                continue
            if not self._health.available:
                # Back: what was kept goes out first, so "available" means it is in Redis.
                try:
                    await self._flush()
                except _FAILURES:
                    self._health.errors["write"] += 1
                    continue
                self._health.recovered()
                self._wake()

    async def _lease_loop(self) -> None:
        while True:
            await trio.sleep(self.session_lease / 3)
            if self._local_sessions:
                args: list[str | int] = [
                    round(self.session_lease * 1000),
                    *sorted(self._local_sessions),
                ]
                try:
                    await self._call(
                        lambda c, args=args: c.eval(_RENEW, [SESSIONS_KEY], args),  # type: ignore[misc]
                        "lease",
                    )
                except StoreUnavailable:
                    continue

    async def _subscribe_loop(self) -> None:
        client = self._client
        assert client is not None
        # coredis reconnects by itself after an outage (at most 1 s between attempts); when its
        # Pub/Sub gives up anyway (its connection closed under it), subscribe anew.
        retry = ExponentialBackoffRetryPolicy(
            (RedisError, OSError), retries=None, base_delay=0.1, max_delay=1.0, jitter=True
        )
        while True:
            try:
                async with client.pubsub(
                    channels=[EVENTS_CHANNEL], ignore_subscribe_messages=True, retry_policy=retry
                ) as pubsub:
                    async for message in pubsub:
                        if message.get("type") != "message":
                            continue
                        try:
                            event = RemoteEvent.from_json(str(message["data"]))
                        except (ValueError, TypeError):
                            self._health.errors["bad_event"] += 1
                            continue
                        self._remote.publish(event)
            except* _FAILURES:
                # Counted, not an outage of its own: the probe says whether Redis answers.
                self._health.errors["subscribe"] += 1
            await trio.sleep(self.probe_interval)

    async def _call(
        self,
        command: Callable[[coredis.Redis[str]], Awaitable[T]],
        op: str,
        *,
        bound: float | None = None,
    ) -> T:
        """One awaited command, bounded by `bound` seconds (default: the store's timeout);
        `StoreUnavailable` when it fails."""
        client = self._client
        if client is None:
            raise StoreUnavailable(f"the store at {self.url} is not running")
        try:
            with trio.fail_after(self.timeout if bound is None else bound):
                return await command(client)
        except _FAILURES as exc:
            self._health.failed(op)
            raise StoreUnavailable(
                f"the store at {self.url} did not answer: {str(exc) or type(exc).__name__}"
            ) from exc

    # -- conversations ---------------------------------------------------------------------

    def save_conversation(self, record: ConversationRecord) -> None:
        self._conversations[record.session_id] = record
        self._conversations.move_to_end(record.session_id)
        while len(self._conversations) > self._queue:
            self._conversations.popitem(last=False)
            self._health.dropped["conversation"] += 1
        self._wake()

    async def load_conversation(self, session_id: str) -> ConversationRecord | None:
        key = PREFIX + "conv:" + session_id
        text, seq = await self._call(lambda c: c.mget([key, key + ":seq"]), "load")
        record = self._conversations.get(session_id)  # not written yet (or an outage)
        if record is None and text is not None:
            try:
                record = ConversationRecord.from_json(text)
            except ValueError:
                self._health.errors["bad_record"] += 1
        if record is None:
            return None
        newest = max(int(seq) if seq and seq.isdigit() else -1, self._seqs.get(session_id, -1))
        return dataclasses.replace(record, next_seq=max(record.next_seq, newest + 1))

    # -- the session limit -----------------------------------------------------------------

    async def acquire_session(self, session_id: str, limit: int) -> bool:
        lease = round(self.session_lease * 1000)
        result = await self._call(
            lambda c: c.eval(_ACQUIRE, [SESSIONS_KEY], [session_id, limit, lease]), "acquire"
        )
        if result == 1:
            self._local_sessions.add(session_id)
            self._releases.discard(session_id)
            return True
        return False

    def release_session(self, session_id: str) -> None:
        if session_id in self._local_sessions:
            self._local_sessions.discard(session_id)
            self._releases.add(session_id)
            self._wake()

    async def live_sessions(self) -> list[str]:
        members: Any = await self._call(lambda c: c.eval(_LIVE, [SESSIONS_KEY], []), "live")
        return sorted(str(m) for m in members or ())

    # -- SSE replay ------------------------------------------------------------------------

    def append_record(self, record: Record, *, final: bool) -> None:
        self._records.append((record, final))
        if len(self._records) > self._queue:
            self._records.popleft()  # a hole: a reader elsewhere is told `replay_gap`
            self._health.dropped["replay"] += 1
        self._wake()

    def hold_stream(self, stream_id: str, ttl: float) -> None:
        self._leases[PREFIX + "chat:" + stream_id + ":producer"] = ttl
        self._wake()

    def mark_followed(self, stream_id: str, ttl: float) -> None:
        self._leases[PREFIX + "chat:" + stream_id + ":followed"] = ttl
        self._wake()

    async def followed_elsewhere(self, stream_id: str) -> bool:
        key = PREFIX + "chat:" + stream_id + ":followed"
        return bool(await self._call(lambda c: c.exists([key]), "followed"))

    async def read_records(self, stream_id: str, after: int, *, wait: float) -> StreamRead | None:
        key = PREFIX + "chat:" + stream_id

        async def snapshot(c: coredis.Redis[str]) -> tuple[Any, Any, Any]:
            async with c.pipeline(transaction=False) as pipe:
                entries = pipe.xrange(key, f"(0-{after}", "+", count=self.capacity)
                last = pipe.xrevrange(key, "+", "-", count=1)
                producer = pipe.exists([key + ":producer"])
            return await entries, await last, await producer

        entries, last, producer = await self._call(snapshot, "replay")
        if not last and not producer:
            return None
        finished = bool(last) and last[0].field_values.get("f") == "1"
        last_seq = _seq(last[0].identifier) if last else 0
        if not entries and not finished and wait > 0:
            block = max(1, round(wait * 1000))

            def blocking(c: coredis.Redis[str]) -> Awaitable[Any]:
                return c.xread({key: f"0-{max(after, last_seq)}"}, count=512, block=block)

            # The read blocks for up to `wait`; the store's timeout applies after that.
            found = await self._call(blocking, "follow", bound=wait + self.timeout)
            entries = found.get(key, ()) if found else ()
            if entries:
                finished = entries[-1].field_values.get("f") == "1"
                last_seq = _seq(entries[-1].identifier)
        records = tuple(
            Record(stream_id, _seq(e.identifier), e.field_values["e"], e.field_values["d"])
            for e in entries
        )
        return StreamRead(records, last_seq, finished, bool(producer))

    # -- monitoring ------------------------------------------------------------------------

    def publish_event(self, event: Event) -> None:
        # The newest event number of each session: a worker resuming it after this one died
        # numbers on from there, so event ids stay unique (kept through an outage).
        self._seqs[event.session] = event.seq
        self._wake()
        if not self._health.available:
            self._health.dropped["monitoring"] += 1
            return
        self._events.append(RemoteEvent.of(self._worker_id, event).to_json())
        if len(self._events) > self._queue:
            self._events.popleft()
            self._health.dropped["monitoring"] += 1
        self._wake()

    def remote_events(self, capacity: int) -> Subscription[RemoteEvent]:
        return _OthersOnly(self._remote, capacity, self._worker_id)
