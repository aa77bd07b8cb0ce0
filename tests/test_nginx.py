"""Through a real nginx (Debian's), started by the test with the configuration `bargein serve
--nginx-config` prints (docs/deploy.md), in front of two real worker processes sharing a real
redis-server: chat tokens arrive one by one as the planner produces them, not in one burst at
the end (the shape of the inter-arrival times, not a wall-clock bound), and a WebSocket voice
session works end to end. Skipped, saying why, without nginx or redis-server."""

from __future__ import annotations

import itertools
import json
import shutil
import statistics
import subprocess
import tempfile
import zlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import h11
import pytest
import trio

from bargein.testing.redis_server import REDIS_SERVER, free_port, redis_server
from bargein.testing.server_process import serve_in_processes
from bargein.testing.store_worker import CHAT_TOKENS
from bargein.testing.web import HttpClient, connect, header
from bargein.transports.protocol import SessionStart, Text, TurnEnded
from bargein.transports.serve import nginx_config
from bargein.transports.sse import SseEvent, SseParser

NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
HANG_GUARD = 90  # seconds; a guard against hangs, never a performance bound
pytestmark = [
    pytest.mark.skipif(NGINX is None, reason="nginx is not installed: apt install nginx"),
    pytest.mark.skipif(REDIS_SERVER is None, reason="redis-server is not installed: apt install"),
]
USER = {"messages": [{"role": "user", "content": "count for me"}]}


@asynccontextmanager
async def nginx(workers: list[int]) -> AsyncIterator[int]:
    """nginx on a free loopback port in front of `workers`; killed (with its children, it has
    none: one process) at the end."""
    assert NGINX is not None
    port = free_port()
    with tempfile.TemporaryDirectory() as prefix:
        conf = Path(prefix) / "nginx.conf"
        conf.write_text(
            nginx_config([f"127.0.0.1:{p}" for p in workers], f"127.0.0.1:{port}", prefix=prefix)
        )
        command = [NGINX, "-p", prefix, "-c", str(conf), "-e", f"{prefix}/error.log",
                   "-g", "daemon off; master_process off;"]  # fmt: skip
        process = await trio.lowlevel.open_process(command, stdin=subprocess.DEVNULL)
        try:
            with trio.fail_after(10):
                while True:
                    try:
                        stream = await trio.open_tcp_stream("127.0.0.1", port)
                    except OSError:
                        assert process.poll() is None, (Path(prefix) / "error.log").read_text()
                        await trio.sleep(0.05)
                        continue
                    await stream.aclose()
                    break
            yield port
        finally:
            with trio.CancelScope(shield=True):
                process.kill()
                await process.wait()


async def test_tokens_arrive_unbatched_and_a_voice_session_works_through_nginx() -> None:
    argv = ("-m", "bargein.testing.store_worker", "--store")
    with trio.fail_after(HANG_GUARD):
        async with (
            redis_server() as redis,
            serve_in_processes([(*argv, redis.url)] * 2) as (a, b),
            nginx([a.port, b.port]) as port,
        ):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            async with stream:
                client = HttpClient(stream)
                # As a browser asks: gzip would buffer an event stream, if nginx applied it.
                response = await client.request(
                    "POST", "/api/chat/stream", USER, headers={"Accept-Encoding": "gzip"}
                )
                assert response.status_code == 200
                parser = SseParser()
                # Decoded as a browser would, should the proxy compress (it must not).
                gzipped = header(response, "Content-Encoding") == "gzip"
                inflate = zlib.decompressobj(wbits=31)
                arrivals: list[tuple[float, int]] = []  # (time, tokens in that read)
                done = False
                timings: dict[str, int] = {}
                while not done:
                    event = await client._next()
                    if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
                    if isinstance(event, h11.Data):
                        data = inflate.decompress(event.data) if gzipped else event.data
                        items = [i for i in parser.feed(data) if isinstance(i, SseEvent)]
                        tokens = sum(1 for i in items if i.event == "token")
                        if tokens:
                            arrivals.append((trio.current_time(), tokens))
                        for item in items:
                            if item.event == "done":
                                timings = json.loads(item.data)["timings"]
                                done = True
            async with connect(port, SessionStart(16000)) as voice:
                await voice.send(Text("what is two plus two"))
                ended = await voice.wait_for(lambda m: isinstance(m, TurnEnded))
    assert sum(n for _, n in arrivals) == CHAT_TOKENS
    # One burst at the end (a buffering proxy) would put most tokens in one read and make the
    # gaps between reads all ~0 but one; streamed, nearly every token is its own read, and the
    # gaps are alike: the median gap is a good part of the mean gap.
    assert len(arrivals) >= 0.75 * CHAT_TOKENS, arrivals
    assert max(n for _, n in arrivals) <= CHAT_TOKENS // 4
    # The tokens reached the client over (nearly) the time the planner took to produce them:
    # the server's own account of that (first token to done) against the arrival span.
    produced_s = (timings["total_ms"] - timings["first_token_ms"]) / 1000
    assert arrivals[-1][0] - arrivals[0][0] >= 0.5 * produced_s
    gaps = [t2 - t1 for (t1, _), (t2, _) in itertools.pairwise(arrivals)]
    assert statistics.median(gaps) >= 0.5 * statistics.fmean(gaps)
    assert isinstance(ended, TurnEnded) and ended.status == "completed"
    assert ended.heard == "Four." and voice.audio(ended.turn)
