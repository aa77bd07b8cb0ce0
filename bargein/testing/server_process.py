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

__all__ = [
    "ProcSample",
    "ServerProcess",
    "own_cpu_s",
    "proc_sample",
    "serve_in_process",
    "serve_in_processes",
]

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


async def http_head(port: int, path: str) -> bytes:
    """GET `path` on 127.0.0.1:`port` (`Connection: close`); the status line and headers."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
        await stream.send_all(request.encode())
        data = b""
        while b"\r\n\r\n" not in data and (chunk := await stream.receive_some(65536)):
            data += chunk
        return data


@asynccontextmanager
async def serve_in_process(
    argv: Sequence[str] = ("demo",), *, ready_timeout: float = 60.0
) -> AsyncIterator[ServerProcess]:
    """Run ``bargein <argv> --host 127.0.0.1 --port 0`` (or a module given as ``-m mod ...``),
    wait for its "open http://127.0.0.1:PORT/" line, yield it; SIGTERM then SIGKILL at exit."""
    async with serve_in_processes([argv], ready_timeout=ready_timeout) as (server,):
        yield server


@asynccontextmanager
async def serve_in_processes(
    argvs: Sequence[Sequence[str]], *, ready_timeout: float = 60.0
) -> AsyncIterator[list[ServerProcess]]:
    """`serve_in_process` for several servers at once: all start together (a worker's start-up
    is mostly its own imports, so N of them take about as long as one), in `argvs` order."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    processes: list[trio.Process] = []
    try:
        for argv in argvs:
            process = await trio.lowlevel.open_process(
                _command(argv), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, env=env,
            )  # fmt: skip
            processes.append(process)
        logs = [bytearray() for _ in processes]
        ports: list[int | None] = [None] * len(processes)

        async def ready(i: int) -> None:
            ports[i] = await _ready_port(processes[i], logs[i], ready_timeout)

        async with trio.open_nursery() as starting:
            for i in range(len(processes)):
                starting.start_soon(ready, i)
        async with trio.open_nursery() as nursery:
            servers = []
            for process, port, log in zip(processes, ports, logs, strict=True):
                assert port is not None
                nursery.start_soon(_drain, process, log)
                servers.append(ServerProcess(process, port, log))
            yield servers
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            for process in processes:
                if process.poll() is None:
                    process.send_signal(signal.SIGTERM)
            for process in processes:
                with trio.move_on_after(10):
                    await process.wait()
                if process.poll() is None:
                    process.kill()
                    await process.wait()


def _command(argv: Sequence[str]) -> list[str]:
    if not argv or argv[0] != "-m":
        argv = ["-m", "bargein.cli", *argv]
    # $BARGEIN_MEMTRACE=DIR[:SECONDS[:FRAMES[:DELAY]]]: the server runs under tracemalloc from
    # DELAY s (60) after its start and writes a snapshot to DIR/<pid>/ every SECONDS (30),
    # tracebacks FRAMES deep (8) (memtrace.py).
    trace = os.environ.get("BARGEIN_MEMTRACE")
    if trace:
        given = trace.split(":")
        options = [*given, *("", "30", "8", "60")[len(given) :]][:4]
        argv = ["-m", "bargein.testing.memtrace", *options, *argv]
    return [sys.executable, *argv, "--host", "127.0.0.1", "--port", "0"]


async def _ready_port(process: trio.Process, log: bytearray, ready_timeout: float) -> int:
    """The port of the server's "open http://127.0.0.1:PORT/" line on stderr."""
    assert process.stderr is not None
    with trio.move_on_after(ready_timeout):
        while True:
            chunk = await process.stderr.receive_some(65536)
            if not chunk:
                break
            log += chunk
            match = _URL.search(log)
            if match:
                return int(match.group(2))
    raise RuntimeError(f"server did not start: {bytes(log[-2000:]).decode()}")


async def _drain(process: trio.Process, log: bytearray) -> None:
    assert process.stderr is not None
    while chunk := await process.stderr.receive_some(65536):
        log.extend(chunk)


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


def own_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of the process alone, without its children (engine workers)."""
    return _stat(pid)[1]


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
