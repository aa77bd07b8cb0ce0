"""The `Store` contract, run against both implementations: two "workers" (two store objects)
share conversations, session slots, chat streams and events. The Redis half runs a real
redis-server on a free loopback port (skipped, saying why, when it is not installed); then what
an outage does and that the store recovers when Redis returns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.store import ConversationRecord, MemoryStore, Store, StoreUnavailable
from bargein.testing.redis_server import REDIS_SERVER, RedisProcess, free_port, redis_server
from bargein.transports.sse import Record

HANG_GUARD = 30  # seconds; a guard against hangs, never a performance bound
needs_redis = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server (or valkey-server) is not installed: apt install"
)


@asynccontextmanager
async def two_workers(backend: str) -> AsyncIterator[tuple[Store, Store]]:
    async with trio.open_nursery() as nursery:
        if backend == "memory":
            a = MemoryStore()
            b = MemoryStore(shared=a)
            yield a, b
        else:
            from bargein.store.redis import RedisStore

            async with redis_server() as redis:
                a, b = RedisStore(redis.url), RedisStore(redis.url)
                await nursery.start(a.run)
                await nursery.start(b.run)
                yield a, b
        nursery.cancel_scope.cancel()


async def settle(store: Store) -> None:
    """Wait until the store's queued writes are out (a read after them sees them)."""
    for _ in range(1000):  # polling: the writer has no event to wait for (10 s at most)
        if not getattr(store, "writes_pending", False):
            return
        await trio.sleep(0.01)


BACKENDS = ["memory", pytest.param("redis", marks=needs_redis)]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_conversation_saved_by_one_worker_loads_on_another(backend: str) -> None:
    history = (ChatMessage("user", "hi"), ChatMessage("assistant", "hel", interrupted=True))
    with trio.fail_after(HANG_GUARD):
        async with two_workers(backend) as (a, b):
            assert a.worker_id != b.worker_id
            a.save_conversation(ConversationRecord("s1", "secret", (), 1, 0))
            a.save_conversation(ConversationRecord("s1", "secret", history, 2, 17))
            await settle(a)
            loaded = await b.load_conversation("s1")
            assert await b.load_conversation("nope") is None
    assert loaded == ConversationRecord("s1", "secret", history, 2, 17)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_session_limit_holds_across_workers(backend: str) -> None:
    with trio.fail_after(HANG_GUARD):
        async with two_workers(backend) as (a, b):
            assert await a.acquire_session("x", 2)
            assert await b.acquire_session("y", 2)
            assert not await a.acquire_session("z", 2)
            assert not await b.acquire_session("z", 2)
            assert await a.acquire_session("x", 2)  # holding it already
            assert await b.live_sessions() == ["x", "y"]
            a.release_session("x")
            b.release_session("x")  # not b's: no effect
            await settle(a)
            assert await b.acquire_session("z", 2)
            assert await a.live_sessions() == ["y", "z"]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_chat_stream_written_on_one_worker_is_read_and_followed_on_another(
    backend: str,
) -> None:
    with trio.fail_after(HANG_GUARD):
        async with two_workers(backend) as (a, b):
            assert await b.read_records("st", 0, wait=0) is None
            a.hold_stream("st", 5.0)
            for seq in (1, 2, 3):
                a.append_record(Record("st", seq, "token", f'{{"n":{seq}}}'), final=False)
            await settle(a)
            first = await b.read_records("st", 1, wait=0)
            assert first is not None
            assert [r.seq for r in first.records] == [2, 3]
            assert (first.last_seq, first.finished, first.producer_alive) == (3, False, True)
            assert first.records[0].encode() == Record("st", 2, "token", '{"n":2}').encode()

            async def later() -> None:
                await trio.sleep(0.2)
                a.append_record(Record("st", 4, "done", "{}"), final=True)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(later)
                waited = await b.read_records("st", 3, wait=10.0)  # blocks until seq 4
            assert waited is not None
            assert [(r.seq, r.event) for r in waited.records] == [(4, "done")]
            assert waited.finished
            assert not await a.followed_elsewhere("st")
            b.mark_followed("st", 5.0)
            await settle(b)
            assert await a.followed_elsewhere("st")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_worker_sees_the_other_workers_events_not_its_own(backend: str) -> None:
    with trio.fail_after(HANG_GUARD):
        async with two_workers(backend) as (a, b):
            with b.remote_events(64) as on_b, a.remote_events(64) as on_a:
                await trio.sleep(0.2)  # the subscription is in place on the server
                a.publish_event(Event(EventType.SESSION_STARTED, 0.0, "s1", 0))
                b.publish_event(Event(EventType.TURN_STARTED, 0.5, "s2", 3, turn=1))
                got_b = await on_b.get()
                got_a = await on_a.get()
                await trio.sleep(0.1)
                assert len(on_a) == len(on_b) == 0  # nobody got its own
    assert (got_b.worker, got_b.type, got_b.session, got_b.seq) == (
        a.worker_id, "session_started", "s1", 0,
    )  # fmt: skip
    assert (got_a.type, got_a.session, got_a.seq) == ("turn_started", "s2", 3)
    assert '"turn": 1' in got_a.data


@needs_redis
async def test_redis_unreachable_at_start_is_a_clear_error() -> None:
    from bargein.store.redis import RedisStore

    port = free_port()  # nothing listens there
    store = RedisStore(f"redis://:hunter2@127.0.0.1:{port}/0")
    with trio.fail_after(HANG_GUARD), pytest.raises(StoreUnavailable) as raised:
        await store.run()  # raises before it would have started
    assert f"cannot reach the store at redis://:***@127.0.0.1:{port}/0" in str(raised.value)
    assert "hunter2" not in str(raised.value)


@needs_redis
async def test_an_outage_is_counted_and_queued_records_are_written_when_redis_returns() -> None:
    from bargein.store.redis import RedisStore

    with trio.fail_after(HANG_GUARD):
        async with redis_server() as redis, trio.open_nursery() as nursery:
            a = RedisStore(redis.url, probe_interval=0.1)
            b = RedisStore(redis.url, probe_interval=0.1)
            await nursery.start(a.run)
            await nursery.start(b.run)
            await redis.stop()
            with pytest.raises(StoreUnavailable):
                await b.load_conversation("s1")
            a.save_conversation(ConversationRecord("s1", "k", (ChatMessage("user", "hi"),), 2, 5))
            a.append_record(Record("st", 1, "token", "{}"), final=False)
            a.publish_event(Event(EventType.SESSION_STARTED, 0.0, "s1", 0))
            while a.health.available:
                await a.health.wait_changed()
            assert a.health.outages == 1 and sum(a.health.errors.values()) >= 1
            await RedisProcess.start(redis)  # back, empty, on the same port
            for store in (a, b):
                while not store.health.available:
                    await store.health.wait_changed()
            await settle(a)
            loaded = await b.load_conversation("s1")
            replay = await b.read_records("st", 0, wait=0)
            nursery.cancel_scope.cancel()
    assert loaded is not None and loaded.next_seq == 5
    assert replay is not None and [r.seq for r in replay.records] == [1]
    assert a.health.dropped["monitoring"] >= 1  # events are not kept through an outage
