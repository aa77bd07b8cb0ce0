"""Shutdown benchmark: how long `bargein demo` takes to stop with streams open.

Serves the demo app on 127.0.0.1 (real hypercorn) with, per round, voice sessions over the
WebSocket, chat streams whose planner never finishes, and monitoring streams; then triggers
shutdown and measures, on trio's clock from the trigger, when each stream got its final
event (WebSocket close, chat `error`/`shutting_down`, monitor `error`/`shutting_down`) and
when `serve` returned. The clients keep their TCP connections open after the end, as a lazy
peer would. docs/web.md states the bound (SESSIONS_END_TIMEOUT + GRACEFUL_TIMEOUT + the
WebSocket close_timeout) these figures sit under.
"""

from __future__ import annotations

import argparse
import json
from contextlib import AsyncExitStack
from typing import Any

import trio

from bargein.benchmarks.common import emit, percentiles
from bargein.testing.web import Client, GatedPlanner, HttpClient, connect, http
from bargein.transports.access import AccessConfig
from bargein.transports.app import GRACEFUL_TIMEOUT, SESSIONS_END_TIMEOUT, DemoServer
from bargein.transports.protocol import SessionStart
from bargein.transports.websocket import ConnectionLimits

CLOSE_TIMEOUT = ConnectionLimits().close_timeout  # a WebSocket's shielded close, at most

USER = {"messages": [{"role": "user", "content": "think for ever"}]}


async def _round(streams: int) -> dict[str, Any]:
    planner = GatedPlanner([" thinking"], [" never"])
    server = DemoServer(chat_planner=planner, access=AccessConfig(monitoring=True))
    stop = trio.Event()
    served_at: list[float] = []
    finals: dict[str, list[float]] = {"voice": [], "chat": [], "monitor": []}
    async with trio.open_nursery() as nursery:

        async def serve(task_status: trio.TaskStatus[list[str]]) -> None:
            await server.serve("127.0.0.1", 0, shutdown_trigger=stop.wait, task_status=task_status)
            served_at.append(trio.current_time())

        urls: list[str] = await nursery.start(serve)
        port = int(urls[0].rsplit(":", 1)[1])
        async with AsyncExitStack() as stack:
            monitors: list[HttpClient] = []
            chats: list[HttpClient] = []
            voices: list[Client] = []
            for _ in range(streams):
                monitor = await stack.enter_async_context(http(port))
                await monitor.request("GET", "/api/monitoring/stream")
                await monitor.item()  # hello: subscribed
                monitors.append(monitor)
                chat = await stack.enter_async_context(http(port))
                await chat.request("POST", "/api/chat/stream", USER)
                while b"thinking" not in chat.body:
                    await chat.item()
                chats.append(chat)
                voices.append(await stack.enter_async_context(connect(port, SessionStart(16000))))

            async def until_end(kind: str, client: HttpClient) -> None:
                events = await client.events()
                last = json.loads(events[-1].data) if events else {}
                assert client.complete and last.get("code") == "shutting_down", (kind, last)
                finals[kind].append(trio.current_time())

            async def until_closed(client: Client) -> None:
                await client.wait_closed()
                assert client.close_code == 1001, client.close_code
                finals["voice"].append(trio.current_time())

            async with trio.open_nursery() as readers:
                for m in monitors:
                    readers.start_soon(until_end, "monitor", m)
                for c in chats:
                    readers.start_soon(until_end, "chat", c)
                for v in voices:
                    readers.start_soon(until_closed, v)
                await trio.sleep(0.2)  # everything idle and attached
                triggered = trio.current_time()
                stop.set()
    out: dict[str, Any] = {
        f"{kind}_final_ms": [round((t - triggered) * 1e3, 1) for t in times]
        for kind, times in finals.items()
    }
    out["serve_returned_ms"] = round((served_at[0] - triggered) * 1e3, 1)
    return out


async def _run(rounds: int, streams: int) -> dict[str, Any]:
    results = [await _round(streams) for _ in range(rounds)]
    return {
        "rounds": rounds,
        "streams_of_each_kind": streams,
        "stated_bound_ms": (SESSIONS_END_TIMEOUT + GRACEFUL_TIMEOUT + CLOSE_TIMEOUT) * 1e3,
        "serve_returned_ms": percentiles([r["serve_returned_ms"] for r in results]),
        **{
            f"{kind}_final_ms": percentiles([t for r in results for t in r[f"{kind}_final_ms"]])
            for kind in ("voice", "chat", "monitor")
        },
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bargein bench shutdown", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--streams", type=int, default=3, help="open streams of each kind")
    args = parser.parse_args(argv)
    emit(trio.run(_run, args.rounds, args.streams), args.json)
    return 0
