"""A bargein server in a child process, on a loopback ephemeral port: for tests that must see the
process survive (a crash inside a C library would take pytest with it if served in-process),
and for load and soak runs that measure the server's CPU, RSS, fds and threads from outside."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

__all__ = ["ProcSample", "ServerProcess", "proc_sample", "serve_in_process"]

_URL = re.compile(rb"open (http://127\.0\.0\.1:(\d+))/")


@dataclass
class ServerProcess:
    process: trio.Process
    port: int
    log: bytearray  # everything the server wrote to stderr so far

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def serve_in_process(
    argv: Sequence[str] = ("demo",), *, ready_timeout: float = 60.0
) -> AsyncIterator[ServerProcess]:
    """Run ``bargein <argv> --host 127.0.0.1 --port 0`` (or a module given as ``-m mod ...``),
    wait for its "open http://127.0.0.1:PORT/" line, yield it; SIGTERM then SIGKILL at exit."""
    command = [sys.executable, "-m", "bargein.cli", *argv, "--host", "127.0.0.1", "--port", "0"]
    if argv and argv[0] == "-m":
        command = [sys.executable, *argv, "--host", "127.0.0.1", "--port", "0"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = await trio.lowlevel.open_process(
        command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        env=env,
    )  # fmt: skip
    assert process.stderr is not None
    log = bytearray()
    try:
        async with trio.open_nursery() as nursery:
            port: int | None = None
            with trio.move_on_after(ready_timeout):
                while port is None:
                    chunk = await process.stderr.receive_some(65536)
                    if not chunk:
                        break
                    log += chunk
                    match = _URL.search(log)
                    port = int(match.group(2)) if match else None
            if port is None:
                raise RuntimeError(f"server did not start: {bytes(log[-2000:]).decode()}")

            async def drain() -> None:
                while chunk := await process.stderr.receive_some(65536):  # type: ignore[union-attr]
                    log.extend(chunk)

            nursery.start_soon(drain)
            yield ServerProcess(process, port, log)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                with trio.move_on_after(10):
                    await process.wait()
            if process.poll() is None:
                process.kill()
                await process.wait()


@dataclass(frozen=True)
class ProcSample:
    cpu_s: float  # user + system CPU seconds so far
    rss_bytes: int
    fds: int
    threads: int


def _stat(pid: int) -> tuple[int, float, int, int]:
    """(ppid, CPU seconds, RSS bytes, threads) of one process, from /proc/<pid>/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
    return int(fields[1]), cpu, rss, int(fields[17])


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if _stat(int(entry))[0] == pid:
                    found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile
    return found


def proc_sample(pid: int) -> ProcSample:
    """CPU time, RSS, open fds and threads of a live process, from /proc (Linux). CPU and RSS
    include its live child processes (engine workers), whose work is the server's."""
    _, cpu, rss, threads = _stat(pid)
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    for child in _children(pid):
        try:
            _, child_cpu, child_rss, _ = _stat(child)
        except OSError:
            continue
        cpu += child_cpu
        rss += child_rss
    return ProcSample(cpu, rss, fds, threads)
