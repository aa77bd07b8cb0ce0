"""`bargein bench load`: real WebSocket clients against a real server process, over loopback.

N clients each stream a shared recording (``pocketsphinx_goforward.raw``, "go forward ten
meters", speech ≈ 0.48–2.40 s) in real time in 20 ms frames, ``--utterances`` times with a
``--gap`` of silence after each, report playback every 100 ms as a page would (starting at
independent phases of that cycle, ``--start stagger``, or all within 1 s, ``lockstep``), and
measure:

- reply rate: utterances answered with audio / utterances spoken;
- speech end → first reply audio: from the instant the client sent the last voiced frame of an
  utterance to the first binary frame of the turn answering it (p50/p99, nearest rank);
- frame arrival jitter: |inter-arrival − frame duration| of reply audio frames after the
  egress lead (p99, ms).

The server (``--serve scripted|embedded``: this module in a child process, on 127.0.0.1:0) is
measured from outside, from /proc: CPU % of one core per session over the streaming window, RSS
growth per session over the idle server, and /healthz latency polled every 250 ms. N is swept
(``--scripted`` / ``--embedded`` lists); the capacity is the largest N with every utterance
answered and p99 speech end → first audio ≤ ``--p99-bound`` s. The clients run in this process
(raw_websocket.py: a minimal RFC 6455 client, every client's audio sent by one pacer task) and
compete with the server for the same cores (their CPU is reported, `client_cpu_pct`). Loopback
only; every step is bounded in time.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import trio

from bargein.benchmarks.load_client import (
    RATE,
    STARTS,
    ClientResult,
    Pacer,
    _client,
    _round,
    percentile,
    start_delays,
    talking_at_once,
    tally,
)
from bargein.benchmarks.load_server import (
    Servers,
    _poll_health,
    _scripted_factory,
    runqueue_wait_s,
    serve,
    serving,
)
from bargein.benchmarks.raw_websocket import ConnectionClosed
from bargein.testing.audio import shared_audio_dir
from bargein.testing.server_process import ServerProcess, proc_sample

RECORDING = "pocketsphinx_goforward.raw"
# Imported from here by bench/soak.py, bench scale and tests (the server side is load_server.py).
__all__ = ["RECORDING", "Servers", "_scripted_factory", "main", "run_step", "serving", "sweep"]


async def run_step(
    server: Servers, n: int, pcm: np.ndarray, utterances: int, gap_s: float,
    p99_bound: float, start: str = "stagger",
) -> dict[str, Any]:  # fmt: skip
    cycle_s = len(pcm) / RATE + gap_s
    delays = start_delays(n, start, cycle_s, seed=n)
    results = [ClientResult() for _ in range(n)]
    health: list[float] = []
    before, before_each = server.sample(), [proc_sample(p.process.pid) for p in server.processes]
    before_own = server.own_cpu_s()
    before_waits = [runqueue_wait_s(p.process.pid) for p in server.processes]
    before_client_wait = runqueue_wait_s(os.getpid())
    client_cpu = time.process_time()
    wall = time.perf_counter()
    step_bound = 60 + (utterances + 1) * cycle_s * 2  # + 1: the staggered starts
    with trio.move_on_after(step_bound) as bound:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_poll_health, server.port, health)
            pacer = Pacer()  # every client's audio, from one task
            nursery.start_soon(pacer.run)
            async with trio.open_nursery() as clients:
                for result, delay in zip(results, delays, strict=True):
                    clients.start_soon(
                        _guarded, server, pcm, utterances, gap_s, delay, result, pacer
                    )
            nursery.cancel_scope.cancel()
    wall = time.perf_counter() - wall
    after, after_each = server.sample(), [proc_sample(p.process.pid) for p in server.processes]
    own_s = server.own_cpu_s() - before_own
    waits = [
        runqueue_wait_s(p.process.pid) - w
        for p, w in zip(server.processes, before_waits, strict=True)
    ]
    client_wait = runqueue_wait_s(os.getpid()) - before_client_wait
    t = tally(results)
    spoken, answered, latencies, jitter = t.spoken, t.answered, t.latencies, t.jitter_ms
    errors, messages = t.errors, t.messages
    p99 = percentile(latencies, 99) if latencies else math.inf
    cpu_s = after.cpu_s - before.cpu_s
    active_s = sum(r.active_s for r in results)  # session-seconds of streaming
    most, mean = talking_at_once([end for r in results for end in r.speech_ends])
    return {
        "clients": n,
        "start": start,
        "talking_at_once_max": most,
        "talking_at_once_mean": round(mean, 2),
        "connected": sum(r.connected for r in results),
        "utterances": spoken,
        "answered": answered,
        "reply_rate": round(answered / spoken, 3) if spoken else 0.0,
        "speech_end_to_first_audio_p50_s": _round(percentile(latencies, 50) if latencies else None),
        "speech_end_to_first_audio_p99_s": _round(p99 if latencies else None),
        "frame_jitter_p50_ms": _round(percentile(jitter, 50) if jitter else None),
        "frame_jitter_p99_ms": _round(percentile(jitter, 99) if jitter else None),
        "server_cpu_pct_per_session": round(100 * cpu_s / wall / max(n, 1), 2),
        # The same per second a session streamed: staggered starts lengthen the step's wall
        # time (sessions not yet or no longer there), which dilutes the figure above.
        "server_cpu_pct_per_active_session": round(100 * cpu_s / active_s, 2) if active_s else None,
        "server_cpu_pct_total": round(100 * cpu_s / wall, 1),
        # Of the total, what the engine worker processes used (decoding, with workers on).
        "server_cpu_pct_engine_workers": round(100 * (cpu_s - own_s) / wall, 1),
        # Each server process's share (with --server-processes: how the kernel spread them).
        "server_cpu_pct_by_process": [
            round(100 * (a.cpu_s - b.cpu_s) / wall, 1)
            for a, b in zip(after_each, before_each, strict=True)
        ],
        "server_rss_mb": round(after.rss_bytes / 2**20, 1),
        "server_threads": after.threads,
        "healthz_p50_ms": _round(percentile(health, 50) if health else None),
        "healthz_p99_ms": _round(percentile(health, 99) if health else None),
        "client_cpu_pct": round(100 * (time.process_time() - client_cpu) / wall, 1),
        # Time each server process (its main thread) and the client were ready to run but
        # waited for a core, % of the step: how much the machine's other work held them back.
        "server_cpu_wait_pct_by_process": [round(100 * w / wall, 1) for w in waits],
        "client_cpu_wait_pct": round(100 * client_wait / wall, 1),
        "wall_s": round(wall, 1),
        "timed_out": bound.cancelled_caught,
        "errors": errors,
        "messages": dict(sorted(messages.items())),
        "ok": spoken > 0 and answered == spoken and p99 <= p99_bound,
    }


async def _guarded(
    server: Servers | ServerProcess, pcm: np.ndarray, utterances: int, gap_s: float, delay: float,
    result: ClientResult, pacer: Pacer | None = None,
) -> None:  # fmt: skip
    try:
        await _client(server.ws_url, pcm, utterances, gap_s, delay, result, pacer)
    except (OSError, ConnectionClosed, trio.BrokenResourceError) as exc:
        result.errors.append(type(exc).__name__)
    except Exception as exc:  # a handshake refusal and the like: counted, not fatal to the run
        result.errors.append(type(exc).__name__)


async def sweep(
    engines: str, counts: Sequence[int], args: argparse.Namespace, pcm: np.ndarray
) -> dict[str, Any]:
    # The embedded server loads a decoder per speaker it will have at once before it serves,
    # as a deployment sized for N speakers would (`SphinxStt.warm`; in the worker processes
    # when those are on): a cold decoder costs ~0.4 s of its worker's time on first use.
    warm_argv = ["--warm-decoders", str(max(counts))] if engines == "embedded" and counts else []
    k = args.server_processes
    argv = ["-m", "bargein.benchmarks.load", "--serve", engines, *warm_argv]
    async with serving(argv, k) as server:
        idle = server.sample()
        # Warm-up: loads the decoder / espeak / DSP kernels once, so step 1 is not charged
        # (a client per server process, as connections spread over them).
        await run_step(server, k, pcm, 1, args.gap, args.p99_bound, "lockstep")
        warm = server.sample()
        steps = []
        for n in counts:
            step = await run_step(
                server, n, pcm, args.utterances, args.gap, args.p99_bound, args.start
            )
            step["server_rss_mb_per_session"] = round(
                (step["server_rss_mb"] - warm.rss_bytes / 2**20) / max(n, 1), 2
            )
            steps.append(step)
            print(json.dumps({"engines": engines, **step}), file=sys.stderr, flush=True)
            if not step["ok"] and not args.full:
                break  # replies fell behind: larger N only gets worse
        # Failures the server logged (one line each; docs/web.md): what a figure cannot say.
        logged = [line for line in server.log_lines() if "ERROR" in line or "Traceback" in line
                  or '"level":"error"' in line]  # fmt: skip
    passing = [s["clients"] for s in steps if s["ok"]]
    return {
        "server_processes": k,
        "server_errors_logged": len(logged),
        "server_errors_first": logged[:3],
        "engines": engines,
        "server_rss_idle_mb": round(idle.rss_bytes / 2**20, 1),
        "server_rss_warm_mb": round(warm.rss_bytes / 2**20, 1),
        "steps": steps,
        "capacity": max(passing) if passing else 0,
    }


def _counts(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="bargein bench load", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the report as one JSON line (each step also goes to stderr as it ends)",
    )
    parser.add_argument(
        "--scripted",
        type=_counts,
        default=[25, 50, 100, 200],
        metavar="N,N,...",
        help="client counts to sweep with scripted engines (default 25,50,100,200; '' none)",
    )
    parser.add_argument(
        "--embedded",
        type=_counts,
        default=[2, 4, 8, 16],
        metavar="N,N,...",
        help="client counts to sweep with the embedded engines (default 2,4,8,16; '' none)",
    )
    parser.add_argument(
        "--utterances", type=int, default=3, help="utterances per client (default 3)"
    )
    parser.add_argument(
        "--gap", type=float, default=2.5, help="s of silence after each (default 2.5)"
    )
    parser.add_argument(
        "--p99-bound",
        type=float,
        default=1.5,
        help="a step is ok when every utterance is answered and p99 speech end -> first "
        "reply audio is at most this many s (default 1.5)",
    )
    parser.add_argument(
        "--start",
        choices=STARTS,
        default="stagger",
        help="stagger (default): each client's phase uniform over one utterance cycle, as "
        "independent speakers; lockstep: all start within 1 s and talk at the same moments",
    )
    parser.add_argument("--full", action="store_true", help="run every N even after a failing step")
    parser.add_argument("--serve", choices=("scripted", "embedded"), help=argparse.SUPPRESS)
    parser.add_argument("--warm-decoders", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--bind-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument(
        "--server-processes",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT; default 1); conversations "
        "are per process",
    )
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        port = args.bind_port or args.port
        return serve(args.serve, args.host, port, args.warm_decoders, args.server_processes)
    raw = (shared_audio_dir() / RECORDING).read_bytes()
    pcm = np.frombuffer(raw, "<i2").astype(np.int16)

    async def run() -> dict[str, Any]:
        report: dict[str, Any] = {
            "recording": RECORDING,
            "utterances_per_client": args.utterances,
            "gap_s": args.gap,
            "p99_bound_s": args.p99_bound,
            "start": args.start,
            "cores": _cores(),
            # $BARGEIN_ENGINE_PROCESSES, inherited by the server: pocketsphinx decodes in that
            # many worker processes (0: in threads of the server process).
            "engine_processes": int(os.environ.get("BARGEIN_ENGINE_PROCESSES", "0") or 0),
            "server_processes": args.server_processes,
            "note": "client and server share this machine's cores with other work; noisy",
        }
        for engines, counts in (("scripted", args.scripted), ("embedded", args.embedded)):
            if counts:
                report[engines] = await sweep(engines, counts, args, pcm)
        return report

    report = trio.run(run)
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


def _cores() -> int:
    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
