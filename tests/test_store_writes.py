"""RedisStore's write queue, pure (bargein.store.redis_writes): what one pipeline carries, and
what a batch Redis did not take does on its way back (waits in front of newer writes, or is
dropped and counted). The end-to-end half with a real redis-server is tests/test_store.py."""

from __future__ import annotations

from typing import Any

from bargein.store.base import ConversationRecord, StoreHealth
from bargein.store.redis_writes import WriteQueue, WriteTtls
from bargein.transports.sse import Record


class RecordingPipe:
    """Stands in for a coredis pipeline: the commands in the order they were queued."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args, kwargs))

        return call


def conversation(session: str, turn: int) -> ConversationRecord:
    return ConversationRecord(session, "secret", next_turn=turn)


def test_a_batch_is_everything_queued_in_one_pipeline_and_empties_the_queue() -> None:
    q = WriteQueue(StoreHealth("redis"), limit=8)
    q.conversation(conversation("s1", 2))
    q.release("s9")
    q.record(Record("st", 1, "token", "{}"), final=False)
    q.record(Record("st", 2, "done", "{}"), final=True)
    q.lease("bargein:chat:st:producer", 5.0)
    q.seq("s1", 41)
    q.event('{"e":1}')
    batch = q.take()
    assert not q and batch
    pipe = RecordingPipe()
    batch.fill(pipe, WriteTtls(conversation=60, stream=30, capacity=100))  # type: ignore[arg-type]
    names = [name for name, _, _ in pipe.calls]
    assert names == ["set", "zrem", "xadd", "xadd", "expire", "set", "set", "publish"]
    assert pipe.calls[0][1][0] == "bargein:conv:s1" and pipe.calls[0][2] == {"ex": 60}
    assert pipe.calls[1][1] == ("bargein:sessions", ["s9"])
    assert [c[2]["identifier"] for c in pipe.calls[2:4]] == ["0-1", "0-2"]
    assert [c[1][1]["f"] for c in pipe.calls[2:4]] == ["0", "1"]
    assert pipe.calls[4][1] == ("bargein:chat:st", 30)
    assert pipe.calls[5][2] == {"px": 5000}
    assert pipe.calls[6][1] == ("bargein:conv:s1:seq", "41")
    assert pipe.calls[7][1] == ("bargein:events", '{"e":1}')
    assert not q.take()


def test_a_batch_put_back_waits_in_front_and_newer_versions_win() -> None:
    health = StoreHealth("redis")
    q = WriteQueue(health, limit=8)
    q.conversation(conversation("s1", 2))
    q.record(Record("st", 1, "token", "{}"), final=False)
    q.seq("s1", 10)
    q.event("lost")
    q.lease("bargein:chat:st:producer", 5.0)
    failed = q.take()
    # Queued while the pipeline was failing:
    q.conversation(conversation("s1", 3))
    q.record(Record("st", 2, "token", "{}"), final=False)
    q.seq("s1", 12)
    q.put_back(failed)
    assert q.pending_conversation("s1") == conversation("s1", 3)  # the newer record
    assert q.pending_seq("s1") == 12
    again = q.take()
    assert [r.seq for r, _ in again.records] == [1, 2]  # in order, the old one first
    assert again.events == () and health.dropped["monitoring"] == 1  # not kept: counted
    assert again.leases == ()  # refreshed by their owners anyway


def test_what_waits_is_bounded_and_each_drop_is_counted() -> None:
    health = StoreHealth("redis")
    q = WriteQueue(health, limit=2)
    for seq in (1, 2, 3):
        q.record(Record("st", seq, "token", "{}"), final=False)
    assert health.dropped["replay"] == 1  # the oldest: a reader elsewhere sees a gap
    for turn in (1, 2, 3):
        q.conversation(conversation(f"s{turn}", turn))
    assert health.dropped["conversation"] == 1 and q.pending_conversation("s1") is None
    failed = q.take()
    q.record(Record("st", 4, "token", "{}"), final=False)
    q.put_back(failed)
    assert [r.seq for r, _ in q.take().records] == [3, 4]  # the limit holds on the way back
    assert health.dropped["replay"] == 2
