"""`bargein bench load`'s server side: the server processes as the benchmark sees them (CPU,
RSS, fds, threads and the time they waited for a core, from /proc; `/healthz` polled), and
the server itself, which runs in each child process (`python -m bargein.benchmarks.load
--serve scripted|embedded`, also used by bench/soak.py and bench/slow_consumer.py)."""

from __future__ import annotations

import os
import sys
import time
import warnings
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from bargein.testing.server_process import (
    ProcSample,
    ServerProcess,
    http_head,
    own_cpu_s,
    proc_sample,
    serve_in_process,
)


def runqueue_wait_s(pid: int) -> float:
    """Seconds the process's main thread was runnable but waiting for a core; 0.0 where the
    kernel does not report it (not Linux, or the process is gone)."""
    try:
        return schedstat_wait_s(Path(f"/proc/{pid}/schedstat").read_text())
    except (OSError, IndexError, ValueError):
        return 0.0


def schedstat_wait_s(text: str) -> float:
    """The run-queue wait of a /proc/<pid>/schedstat line (ns on a core, ns waiting on a run
    queue, time slices), in seconds."""
    return int(text.split()[1]) / 1e9


async def _http_get_ms(port: int, path: str) -> float:
    started = time.perf_counter()
    await http_head(port, path)
    return (time.perf_counter() - started) * 1000


async def _poll_health(port: int, out: list[float]) -> None:
    while True:
        with trio.move_on_after(5):
            out.append(await _http_get_ms(port, "/healthz"))
        await trio.sleep(0.25)


@dataclass
class Servers:
    """The server processes of a run: one, or several on one port (SO_REUSEPORT: the kernel
    spreads the connections over them). Sampled together: CPU, RSS, fds and threads summed."""

    processes: list[ServerProcess]

    @property
    def port(self) -> int:
        return self.processes[0].port

    @property
    def ws_url(self) -> str:
        return self.processes[0].ws_url

    def sample(self) -> ProcSample:
        samples = [proc_sample(p.process.pid) for p in self.processes]
        return ProcSample(
            sum(x.cpu_s for x in samples),
            sum(x.rss_bytes for x in samples),
            sum(x.fds for x in samples),
            sum(x.threads for x in samples),
        )

    def own_cpu_s(self) -> float:
        """CPU seconds of the server processes alone, without their engine workers."""
        return sum(own_cpu_s(p.process.pid) for p in self.processes)

    def log_lines(self) -> list[str]:
        return [
            line
            for p in self.processes
            for line in bytes(p.log).decode(errors="replace").splitlines()
        ]


@asynccontextmanager
async def serving(argv: Sequence[str], k: int) -> AsyncIterator[Servers]:
    """`k` server processes of this module's `--serve` `argv` on one port: the first binds an
    ephemeral port with SO_REUSEPORT (`--server-processes k`), the others the same port."""
    argv = [*argv, "--server-processes", str(k)]
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(serve_in_process(argv))
        processes = [first]
        for _ in range(k - 1):
            bind = ["--bind-port", str(first.port)]
            processes.append(await stack.enter_async_context(serve_in_process([*argv, *bind])))
        yield Servers(processes)


# ------------------------------------------------------------------------ in the child


def _scripted_factory(_: Mapping[str, object]) -> Any:
    from bargein.engines.base import Engines
    from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

    # record=False: a held session must not keep every request and sentence (a test's record).
    return Engines(
        stt=ScriptedStt(default="go forward ten meters"),
        planner=ScriptedPlanner(["Going forward ten meters now."], record=False),
        tts=ScriptedTts(16000, ms_per_char=40.0, record=False),
    )


def serve(engines: str, host: str, port: int, warm_decoders: int = 0, processes: int = 1) -> int:
    from bargein.dsp import warm_up
    from bargein.transports.app import DemoServer, embedded_engines_factory
    from bargein.transports.demo import serve_announced

    if host != "127.0.0.1":
        print("bench load serves on loopback only", file=sys.stderr)
        return 2
    factory = _scripted_factory if engines == "scripted" else embedded_engines_factory()
    server = DemoServer(factory, max_sessions=10_000)
    if processes > 1:
        base = server.hypercorn_config

        def reuse_port(host: str, port: int) -> Any:
            config = base(host, port)
            config.workers = processes  # hypercorn binds with SO_REUSEPORT for > 1 worker
            return config

        server.hypercorn_config = reuse_port  # type: ignore[method-assign]
        warnings.filterwarnings("ignore", message="The config `workers` has no affect")
    # Every client of a loopback benchmark has the same address: no per-address limit.
    server.sessions.max_sessions_per_client = 0
    warm_up()
    _profile_on_sigterm(os.environ.get("BARGEIN_LOAD_PROFILE"))

    async def run() -> None:
        stt = factory({}).stt
        if warm_decoders and hasattr(stt, "warm"):
            await stt.warm(warm_decoders)
        await serve_announced(server, host, port)

    trio.run(run)
    return 0


def _profile_on_sigterm(path: str | None) -> None:
    """With $BARGEIN_LOAD_PROFILE set, profile the server's event-loop thread (cProfile) and
    write the stats to that path when the benchmark stops it (SIGTERM)."""
    if not path:
        return
    import cProfile
    import signal

    profiler = cProfile.Profile()

    def dump(*_: object) -> None:
        profiler.disable()
        profiler.dump_stats(path)
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    profiler.enable()
