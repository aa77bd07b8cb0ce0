"""Several workers sharing one Redis (docs/deploy.md), as real processes: a real redis-server
on a free loopback port, worker processes of `bargein.testing.store_worker` (the demo app on
scripted engines) on ephemeral ports. A chat stream moves from worker A to worker B without an
event lost or repeated; B's monitoring shows A's sessions; a conversation survives A's SIGKILL
mid-turn with the heard history of every ended turn; the session limit holds across workers;
Redis lost while running degrades and recovers; Redis unreachable at start is a clear error;
`bargein serve --workers 2` runs and stops its workers. Skipped, saying why, without
redis-server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio

from bargein.testing.redis_server import REDIS_SERVER, RedisProcess, free_port, redis_server
from bargein.testing.server_process import ServerProcess, serve_in_processes
from bargein.testing.store_worker import CHAT_TOKENS
from bargein.testing.web import connect, http
from bargein.transports.protocol import (
    ErrorMessage,
    HistoryEntry,
    SessionStart,
    SessionStarted,
    Text,
    TurnEnded,
    TurnStarted,
)
from bargein.transports.sse import SseEvent

HANG_GUARD = 90  # seconds; a guard against hangs, never a performance bound
pytestmark = pytest.mark.skipif(
    REDIS_SERVER is None, reason="redis-server (or valkey-server) is not installed: apt install"
)
USER = {"messages": [{"role": "user", "content": "count for me"}]}


@asynccontextmanager
async def two_workers(
    redis: RedisProcess, *extra: str
) -> AsyncIterator[tuple[ServerProcess, ServerProcess]]:
    """Workers A and B on one Redis, started at once."""
    argv = ("-m", "bargein.testing.store_worker", "--store", redis.url, *extra)
    async with serve_in_processes([argv, argv]) as (a, b):
        yield a, b


class Monitor:
    """A monitoring stream read in the background: every SSE event it got, in order."""

    def __init__(self) -> None:
        self.events: list[SseEvent] = []
        self._new = trio.Event()

    async def read(self, port: int, task_status: trio.TaskStatus[None]) -> None:
        async with http(port) as client:
            response = await client.request("GET", "/api/monitoring/stream")
            assert response.status_code == 200
            task_status.started()
            while (item := await client.item()) is not None:
                if isinstance(item, SseEvent):
                    self.events.append(item)
                    self._new.set()
                    self._new = trio.Event()

    async def wait_for(self, predicate: Callable[[SseEvent], bool]) -> SseEvent:
        while True:
            for event in self.events:
                if predicate(event):
                    return event
            await self._new.wait()


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as status:
            return "zombie" in status.read()
    except FileNotFoundError:
        return True


def _session_events(monitor: Monitor, session_id: str) -> list[SseEvent]:
    return [e for e in monitor.events if json.loads(e.data).get("session") == session_id]


async def test_chat_moves_from_a_to_b_whole_and_b_monitors_a() -> None:
    with trio.fail_after(HANG_GUARD):
        async with redis_server() as redis, two_workers(redis) as (a, b):
            async with trio.open_nursery() as nursery:
                monitor = Monitor()
                await nursery.start(monitor.read, b.port)
                await monitor.wait_for(lambda e: e.event == "hello")
                async with connect(a.port, SessionStart(16000)) as voice:
                    await voice.send(Text("what is two plus two"))
                    await voice.wait_for(lambda m: isinstance(m, TurnEnded))
                (started,) = voice.of(SessionStarted)
                session_id = started.session_id
                await monitor.wait_for(
                    lambda e: e.event == "session_ended" and session_id in e.data
                )

                first: list[SseEvent] = []
                async with http(a.port) as client:
                    await client.request("POST", "/api/chat/stream", USER)
                    while len(first) < 6:  # status + 5 tokens, then the connection drops
                        item = await client.item()
                        if isinstance(item, SseEvent):
                            first.append(item)
                last_id = first[-1].id
                assert last_id is not None
                async with http(b.port) as client:
                    response = await client.request(
                        "GET", "/api/chat/stream", headers={"Last-Event-ID": last_id}
                    )
                    assert response.status_code == 200
                    rest = await client.events()
                nursery.cancel_scope.cancel()
    events = first + rest
    seqs = [int((e.id or "").rsplit(":", 1)[1]) for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs  # none lost, none twice
    tokens = [json.loads(e.data)["text"] for e in events if e.event == "token"]
    assert "".join(tokens).split() == [f"w{i}" for i in range(CHAT_TOKENS)]
    assert events[-1].event == "done"
    # B's monitor saw A's session: every event of it, once each, in order.
    mine = _session_events(monitor, session_id)
    kinds = [e.event for e in mine]
    assert kinds[0] == "session_started" and kinds[-1] == "session_ended"
    assert "turn_completed" in kinds
    ids = [e.id for e in mine]
    assert ids == [f"{session_id}:{n}" for n in range(len(ids))]


async def test_a_conversation_survives_its_worker_sigkilled_mid_turn() -> None:
    with trio.fail_after(HANG_GUARD):
        async with redis_server() as redis, two_workers(redis) as (a, b):
            async with connect(a.port, SessionStart(16000)) as voice:
                await voice.send(Text("what is two plus two"))
                await voice.wait_for(lambda m: isinstance(m, TurnEnded))
                await voice.send(Text("now say something long"))
                await voice.wait_for(lambda m: isinstance(m, TurnStarted) and m.turn == 2)
                await voice.wait_for(lambda m: bool(voice.audio(2)))  # mid-turn: audio flows
                a.process.kill()  # SIGKILL: no shutdown, no release, nothing flushed
                await voice.wait_closed()
            (one,) = voice.of(SessionStarted)
            again = SessionStart(16000, session_id=one.session_id, resume_secret=one.resume_secret)
            async with connect(b.port, again) as resumed:
                await resumed.send(Text("what is two plus two"))
                await resumed.wait_for(lambda m: isinstance(m, TurnEnded))
    (two,) = resumed.of(SessionStarted)
    assert two.session_id == one.session_id and two.resumed
    # Every turn that ended on A; the turn in flight (2) is what was lost.
    assert two.history == (
        HistoryEntry("user", "what is two plus two"),
        HistoryEntry("assistant", "Four."),
    )
    # Turn numbers go on past the lost turn: none is used twice in one conversation.
    assert [m.turn for m in resumed.of(TurnStarted)] == [3]


async def test_the_session_limit_holds_across_workers() -> None:
    with trio.fail_after(HANG_GUARD):
        async with (
            redis_server() as redis,
            two_workers(redis, "--max-sessions", "2") as (a, b),
            connect(a.port, SessionStart(16000)),
            connect(b.port, SessionStart(16000)),
        ):
            for port in (b.port, a.port):
                async with connect(port) as third:
                    await third.send(SessionStart(16000))
                    refusal = await third.wait_for(lambda m: isinstance(m, ErrorMessage))
                    assert isinstance(refusal, ErrorMessage)
                    assert (refusal.code, refusal.fatal) == ("server_busy", True)
                    assert "on all workers" in refusal.message
                    assert not third.of(SessionStarted)
            async with http(b.port) as client:
                await client.request("GET", "/healthz")
                await client.item()
                health = json.loads(client.body)
    assert health["server"]["refused"] == {"server_busy": 1}
    assert health["store"]["backend"] == "redis" and health["store"]["available"]


async def test_redis_lost_while_running_degrades_and_recovers() -> None:
    with trio.fail_after(HANG_GUARD):
        async with redis_server() as redis, two_workers(redis) as (a, b):
            async with trio.open_nursery() as nursery:
                monitor = Monitor()
                await nursery.start(monitor.read, a.port)
                await monitor.wait_for(lambda e: e.event == "hello")
                async with connect(a.port, SessionStart(16000)) as voice:
                    await redis.stop()
                    await monitor.wait_for(
                        lambda e: e.event == "store" and not json.loads(e.data)["available"]
                    )
                    # The session in progress goes on without the store.
                    await voice.send(Text("what is two plus two"))
                    await voice.wait_for(lambda m: isinstance(m, TurnEnded))
                    await redis.start()  # back, empty, on the same port
                    await monitor.wait_for(
                        lambda e: e.event == "store" and json.loads(e.data)["available"]
                    )
                (one,) = voice.of(SessionStarted)
                # What was queued during the outage is in Redis now: B can resume it.
                again = SessionStart(
                    16000, session_id=one.session_id, resume_secret=one.resume_secret
                )
                async with connect(b.port, again) as resumed:
                    pass
                async with http(a.port) as client:
                    await client.request("GET", "/healthz")
                    await client.item()
                    health = json.loads(client.body)["store"]
                nursery.cancel_scope.cancel()
    (two,) = resumed.of(SessionStarted)
    assert two.resumed
    assert two.history == (
        HistoryEntry("user", "what is two plus two"),
        HistoryEntry("assistant", "Four."),
    )
    assert health["outages"] == 1 and sum(health["errors"].values()) >= 1
    assert health["available"]
    kinds = [e.event for e in monitor.events]
    assert kinds.count("store") == 2  # unavailable, then available: once each


async def test_redis_unreachable_at_start_is_one_line_and_exit_status_1() -> None:
    port = free_port()  # nothing listens there
    command = [sys.executable, "-m", "bargein.cli", "demo", "--engines", "light", "--port", "0",
               "--store", f"redis://127.0.0.1:{port}/0"]  # fmt: skip
    with trio.fail_after(HANG_GUARD):
        result = await trio.run_process(
            command, capture_stderr=True, check=False, stdin=subprocess.DEVNULL
        )
    assert result.returncode == 1
    lines = result.stderr.decode().strip().splitlines()
    assert lines[-1].startswith(
        f"bargein demo: cannot reach the store at redis://127.0.0.1:{port}/0"
    )


async def test_bargein_serve_runs_n_workers_and_stops_them_all() -> None:
    with trio.fail_after(HANG_GUARD):
        async with redis_server() as redis:
            command = [sys.executable, "-m", "bargein.cli", "serve", "--workers", "2",
                       "--port", "0", "--store", redis.url, "--engines", "light"]  # fmt: skip
            process = await trio.lowlevel.open_process(
                command, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
            assert process.stderr is not None
            log = b""
            try:
                while log.count(b"bargein serve: worker") < 2:
                    chunk = await process.stderr.receive_some(65536)
                    assert chunk, log.decode()[-2000:]
                    log += chunk
                lines = [ln for ln in log.decode().splitlines() if "bargein serve: worker" in ln]
                ports = [int(ln.rsplit(":", 1)[1].rstrip("/")) for ln in lines]
                pids = [int(ln.split("(pid ")[1].split(")")[0]) for ln in lines]
                healths = []
                for port in ports:
                    async with http(port) as client:
                        await client.request("GET", "/healthz")
                        await client.item()
                        healths.append(json.loads(client.body))
                process.send_signal(signal.SIGTERM)
                status = await process.wait()
            finally:
                if process.poll() is None:
                    process.kill()
                    await process.wait()
    assert len(set(ports)) == 2
    assert all(h["status"] == "ok" and h["store"]["backend"] == "redis" for h in healths)
    assert status == 0
    assert all(_gone(pid) for pid in pids)  # the workers went with it
