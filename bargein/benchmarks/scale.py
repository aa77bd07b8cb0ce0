"""`bargein bench scale`: `bench load`'s clients against 1, 2, 4 … worker processes that share a
real redis-server (docs/deploy.md), over loopback.

Each worker is this module in a child process (`--serve`: the demo app on `bench load`'s
scripted engines, `--store redis://…`); clients are dealt to the workers in turn, as a proxy
with affinity would spread distinct clients, and run exactly as in `bench load` (real-time
20 ms frames of a shared recording, playback reports). Per step (workers W, clients N): reply
rate, speech end → first reply audio p50/p99, reply-frame lag (|inter-arrival − 20 ms| after
the egress lead) p50/p99, and the workers' CPU (all of them, % of one core) from /proc. A step
holds when every utterance is answered and the frame lag p99 is within `--lag-bound` ms; the
figure per W is the largest N that holds. Redis is started by the benchmark (skipped, saying
so, without redis-server). Client, workers and Redis share this machine's cores.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from typing import Any

import numpy as np
import trio

from bargein.benchmarks.load import RECORDING, _guarded, _scripted_factory
from bargein.benchmarks.load_client import RATE, ClientResult, _round, percentile, tally
from bargein.testing.audio import shared_audio_dir
from bargein.testing.redis_server import REDIS_SERVER, redis_server
from bargein.testing.server_process import ServerProcess, proc_sample, serve_in_process


async def run_step(
    workers: Sequence[ServerProcess], n: int, pcm: np.ndarray, args: argparse.Namespace
) -> dict[str, Any]:
    rng = random.Random(n)
    results = [ClientResult() for _ in range(n)]
    before = sum(proc_sample(w.process.pid).cpu_s for w in workers)
    wall = time.perf_counter()
    bound = 60 + args.utterances * (len(pcm) / RATE + args.gap) * 2
    with trio.move_on_after(bound) as late:
        async with trio.open_nursery() as clients:
            for i, result in enumerate(results):
                worker = workers[i % len(workers)]
                delay = rng.uniform(0, 1.0)
                clients.start_soon(_guarded, worker, pcm, args.utterances, args.gap, delay, result)
    wall = time.perf_counter() - wall
    cpu = sum(proc_sample(w.process.pid).cpu_s for w in workers) - before
    t = tally(results)
    spoken, answered, latencies, lag = t.spoken, t.answered, t.latencies, t.jitter_ms
    errors = t.errors
    lag_p99 = percentile(lag, 99) if lag else math.inf
    return {
        "workers": len(workers),
        "clients": n,
        "utterances": spoken,
        "answered": answered,
        "reply_rate": round(answered / spoken, 3) if spoken else 0.0,
        "speech_end_to_first_audio_p50_s": _round(percentile(latencies, 50) if latencies else None),
        "speech_end_to_first_audio_p99_s": _round(percentile(latencies, 99) if latencies else None),
        "frame_lag_p50_ms": _round(percentile(lag, 50) if lag else None),
        "frame_lag_p99_ms": _round(lag_p99 if lag else None),
        "workers_cpu_pct_total": round(100 * cpu / wall, 1),
        "wall_s": round(wall, 1),
        "timed_out": late.cancelled_caught,
        "errors": errors,
        "held": spoken > 0 and answered == spoken and lag_p99 <= args.lag_bound,
    }


async def sweep(
    worker_count: int, counts: Sequence[int], redis_url: str, pcm: np.ndarray,
    args: argparse.Namespace,
) -> dict[str, Any]:  # fmt: skip
    argv = ["-m", "bargein.benchmarks.scale", "--serve", "--store", redis_url]
    async with AsyncExitStack() as stack:
        workers = [
            await stack.enter_async_context(serve_in_process(argv)) for _ in range(worker_count)
        ]
        for worker in workers:  # warm-up: DSP kernels, the first session's imports
            await run_step([worker], 1, pcm, argparse.Namespace(**{**vars(args), "utterances": 1}))
        steps = []
        for n in counts:
            step = await run_step(workers, n, pcm, args)
            steps.append(step)
            print(json.dumps(step), file=sys.stderr, flush=True)
            if not step["held"] and not args.full:
                break
    held = [s["clients"] for s in steps if s["held"]]
    return {"workers": worker_count, "steps": steps, "sessions_held": max(held) if held else 0}


# -------------------------------------------------------------------- a worker, child side


def serve(store: str, host: str, port: int) -> int:
    from bargein.dsp import warm_up
    from bargein.store import store_from_url
    from bargein.transports.app import DemoServer
    from bargein.transports.demo import serve_announced

    def factory(options: Mapping[str, object]) -> Any:
        return _scripted_factory(options)

    server = DemoServer(factory, max_sessions=10_000, store=store_from_url(store))
    server.sessions.max_sessions_per_client = 0  # every loopback client has one address
    warm_up()

    trio.run(serve_announced, server, host, port)
    return 0


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bargein bench scale", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print the JSON report only")
    parser.add_argument("--workers", type=_counts, default=[1, 2, 4], help="worker counts")
    parser.add_argument("--clients", type=_counts, default=[10, 20, 40, 60, 80])
    parser.add_argument("--utterances", type=int, default=2)
    parser.add_argument("--gap", type=float, default=2.5, help="s of silence after each")
    parser.add_argument("--lag-bound", type=float, default=40.0, help="frame lag p99, ms")
    parser.add_argument("--full", action="store_true", help="run every N even after a failure")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.store, args.host, args.port)
    if REDIS_SERVER is None:
        print(json.dumps({"skipped": "redis-server is not installed"}))
        return 0
    raw = (shared_audio_dir() / RECORDING).read_bytes()
    pcm = np.frombuffer(raw, "<i2").astype(np.int16)

    async def run() -> dict[str, Any]:
        report: dict[str, Any] = {
            "recording": RECORDING,
            "utterances_per_client": args.utterances,
            "lag_bound_ms": args.lag_bound,
            "cores": os.cpu_count() or 1,
            "engines": "scripted",
            "note": "clients, workers and redis share this machine's cores; noisy",
            "sweeps": [],
        }
        async with redis_server() as redis:
            for count in args.workers:
                report["sweeps"].append(await sweep(count, args.clients, redis.url, pcm, args))
        return report

    report = trio.run(run)
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
