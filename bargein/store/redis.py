"""`RedisStore`: the `Store` in Redis or Valkey, through coredis (native trio via anyio).

The keys are in `redis_layout`. Writes are queued (`redis_writes.WriteQueue`) and written by one
task in pipelines (one round trip per wake-up, in order). While Redis is unreachable,
conversation records, slot releases and chat records wait (bounded) and are written when it
answers again; monitoring events are dropped, counted. A probe pings every `probe_interval`
seconds, so an outage is noticed and its end acted on within one.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import anyio
import coredis
import trio
from coredis.exceptions import RedisError
from coredis.retry import ExponentialBackoffRetryPolicy

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
from bargein.store.redis_layout import (
    ACQUIRE,
    EVENTS_CHANNEL,
    LIVE,
    RENEW,
    SESSIONS_KEY,
    conversation_key,
    entry_seq,
    followed_key,
    producer_key,
    redacted,
    seq_key,
    stream_key,
)
from bargein.store.redis_writes import WriteQueue, WriteTtls
from bargein.transports.sse import Record

T = TypeVar("T")

# coredis logs every retry at INFO: during an outage that is a line per command per worker.
# The outage is ours to report (StoreHealth, the monitors' `store` event), once.
logging.getLogger("coredis").setLevel(logging.WARNING)

# What "Redis did not answer" looks like from here (coredis runs on anyio).
_FAILURES = (
    RedisError,
    OSError,
    trio.TooSlowError,
    anyio.BrokenResourceError,
    anyio.ClosedResourceError,
    anyio.EndOfStream,
)


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
        self._writes = WriteQueue(self._health, queue)
        self._ttls = WriteTtls(conversation_ttl, stream_ttl, capacity)
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
        return self._flushing or bool(self._writes)

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
        while batch := self._writes.take():
            try:
                with trio.fail_after(self.timeout):
                    async with client.pipeline(transaction=False, raise_on_error=False) as pipe:
                        batch.fill(pipe, self._ttls)
            except _FAILURES:
                self._writes.put_back(batch)
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
                        lambda c, args=args: c.eval(RENEW, [SESSIONS_KEY], args),  # type: ignore[misc]
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
        self._writes.conversation(record)
        self._wake()

    async def load_conversation(self, session_id: str) -> ConversationRecord | None:
        keys = [conversation_key(session_id), seq_key(session_id)]
        text, seq = await self._call(lambda c: c.mget(keys), "load")
        record = self._writes.pending_conversation(session_id)  # not written yet (or an outage)
        if record is None and text is not None:
            try:
                record = ConversationRecord.from_json(text)
            except ValueError:
                self._health.errors["bad_record"] += 1
        if record is None:
            return None
        written = int(seq) if seq and seq.isdigit() else -1
        newest = max(written, self._writes.pending_seq(session_id))
        return dataclasses.replace(record, next_seq=max(record.next_seq, newest + 1))

    # -- the session limit -----------------------------------------------------------------

    async def acquire_session(self, session_id: str, limit: int) -> bool:
        lease = round(self.session_lease * 1000)
        result = await self._call(
            lambda c: c.eval(ACQUIRE, [SESSIONS_KEY], [session_id, limit, lease]), "acquire"
        )
        if result == 1:
            self._local_sessions.add(session_id)
            self._writes.cancel_release(session_id)
            return True
        return False

    def release_session(self, session_id: str) -> None:
        if session_id in self._local_sessions:
            self._local_sessions.discard(session_id)
            self._writes.release(session_id)
            self._wake()

    async def live_sessions(self) -> list[str]:
        members: Any = await self._call(lambda c: c.eval(LIVE, [SESSIONS_KEY], []), "live")
        return sorted(str(m) for m in members or ())

    # -- SSE replay ------------------------------------------------------------------------

    def append_record(self, record: Record, *, final: bool) -> None:
        self._writes.record(record, final=final)
        self._wake()

    def hold_stream(self, stream_id: str, ttl: float) -> None:
        self._writes.lease(producer_key(stream_id), ttl)
        self._wake()

    def mark_followed(self, stream_id: str, ttl: float) -> None:
        self._writes.lease(followed_key(stream_id), ttl)
        self._wake()

    async def followed_elsewhere(self, stream_id: str) -> bool:
        key = followed_key(stream_id)
        return bool(await self._call(lambda c: c.exists([key]), "followed"))

    async def read_records(self, stream_id: str, after: int, *, wait: float) -> StreamRead | None:
        key = stream_key(stream_id)

        async def snapshot(c: coredis.Redis[str]) -> tuple[Any, Any, Any]:
            async with c.pipeline(transaction=False) as pipe:
                entries = pipe.xrange(key, f"(0-{after}", "+", count=self.capacity)
                last = pipe.xrevrange(key, "+", "-", count=1)
                producer = pipe.exists([producer_key(stream_id)])
            return await entries, await last, await producer

        entries, last, producer = await self._call(snapshot, "replay")
        if not last and not producer:
            return None
        finished = bool(last) and last[0].field_values.get("f") == "1"
        last_seq = entry_seq(last[0].identifier) if last else 0
        if not entries and not finished and wait > 0:
            block = max(1, round(wait * 1000))

            def blocking(c: coredis.Redis[str]) -> Awaitable[Any]:
                return c.xread({key: f"0-{max(after, last_seq)}"}, count=512, block=block)

            # The read blocks for up to `wait`; the store's timeout applies after that.
            found = await self._call(blocking, "follow", bound=wait + self.timeout)
            entries = found.get(key, ()) if found else ()
            if entries:
                finished = entries[-1].field_values.get("f") == "1"
                last_seq = entry_seq(entries[-1].identifier)
        records = tuple(
            Record(stream_id, entry_seq(e.identifier), e.field_values["e"], e.field_values["d"])
            for e in entries
        )
        return StreamRead(records, last_seq, finished, bool(producer))

    # -- monitoring ------------------------------------------------------------------------

    def publish_event(self, event: Event) -> None:
        # The newest event number of each session: a worker resuming it after this one died
        # numbers on from there, so event ids stay unique (kept through an outage).
        self._writes.seq(event.session, event.seq)
        self._wake()
        if not self._health.available:
            self._health.dropped["monitoring"] += 1
            return
        self._writes.event(RemoteEvent.of(self._worker_id, event).to_json())
        self._wake()

    def remote_events(self, capacity: int) -> Subscription[RemoteEvent]:
        return _OthersOnly(self._remote, capacity, self._worker_id)
