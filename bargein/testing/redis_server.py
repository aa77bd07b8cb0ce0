"""A throwaway `redis-server` on a free loopback port, for tests: no persistence, no config
file, killed at the end of the block (also when the test fails). `stop()` and `start()` take it
away and bring it back on the same port, as an outage would."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import trio

__all__ = ["REDIS_SERVER", "RedisProcess", "free_port", "redis_server"]

REDIS_SERVER = shutil.which("redis-server") or shutil.which("valkey-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisProcess:
    port: int
    process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, ready_timeout: float = 10.0) -> None:
        assert REDIS_SERVER is not None
        command = [
            REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--loglevel", "warning",
        ]  # fmt: skip
        self.process = await trio.lowlevel.open_process(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL
        )
        with trio.fail_after(ready_timeout):
            while not await self._pong():
                if self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited ({self.process.returncode})")
                await trio.sleep(0.02)

    async def _pong(self) -> bool:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        except OSError:
            return False
        async with stream:
            await stream.send_all(b"PING\r\n")
            reply = await stream.receive_some(64)
        return reply.startswith(b"+PONG")

    async def stop(self) -> None:
        """SIGKILL: Redis gone at once, as in a crash."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
        if process is not None:
            # Shielded and bounded: a SIGKILLed process is reaped at once.
            with trio.CancelScope(shield=True), trio.move_on_after(10):
                await process.wait()


@asynccontextmanager
async def redis_server() -> AsyncIterator[RedisProcess]:
    """A running redis-server for the block (callers skip when `REDIS_SERVER` is None)."""
    redis = RedisProcess(free_port())
    try:
        await redis.start()
        yield redis
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(10):
            await redis.stop()
