"""Soak: connect → speak → disconnect cycles against a server process on loopback, sampling the
server's RSS, open fds and threads (issue 16).

Each cycle opens a WebSocket session, sends "go forward ten meters" plus 0.5 s of silence (3.3 s,
in 20 ms frames at ``--speed`` × real time, default 2) and then leaves in one of three
ways, in rotation: after the reply ended (clean: `audio.end`, wait for `turn.ended`, close),
mid-reply (close as soon as the first reply audio arrives), or abruptly (the TCP socket is
dropped without a close handshake, mid-input). ``--concurrency`` cycles run at once.

The server runs in a child process (``bargein.benchmarks.load --serve scripted|embedded``) and
is sampled from /proc every ``--sample-every`` cycles. fds and threads of the idle server after
the last cycle are compared with the idle server before the first (target ± 5); RSS under load
at the end with RSS under load after a warm-up of 5 % of the cycles (target flat ± 5 %).
Bounded by ``--max-seconds``; loopback only.

    python bench/soak.py --cycles 10000 --json
    python bench/soak.py --hold 200 --hold-seconds 600 --json   # 200 sessions for 10 minutes

``--hold N`` instead holds N sessions at once for ``--hold-seconds``: ``bargein bench load``'s
clients (raw RFC 6455 client, one pacer, staggered phases), each speaking the recording then
``--hold-gap`` s of silence (5) in turn, in real time, reading every reply (answered, latency);
the server is sampled every 15 s; after the last session, how long until the server is back to
its idle fds (± 5, polled up to 60 s).

``--server-processes N`` serves with N processes on one port (SO_REUSEPORT, as ``bargein bench
load``), sampled summed. Set ``$BARGEIN_MEMTRACE`` to trace the server's allocations
(bargein/testing/server_process.py, docs/capacity.md).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from bargein.benchmarks.load import Servers, run_step, serving
from bargein.testing.audio import shared_audio_dir
from bargein.testing.server_process import proc_sample

RATE, FRAME = 16_000, 320
P99_BOUND_S = 1.5  # the hold's `replies.ok`: every utterance answered, p99 within this
# What the hold reports of its clients (bench load's step, docs/capacity.md).
HOLD_STEP_FIELDS = (
    "connected", "utterances", "answered", "reply_rate", "speech_end_to_first_audio_p50_s",
    "speech_end_to_first_audio_p99_s", "frame_jitter_p99_ms", "server_cpu_pct_total",
    "server_cpu_pct_by_process", "client_cpu_pct", "server_cpu_wait_pct_by_process", "errors",
    "messages", "timed_out", "ok",
)  # fmt: skip


async def cycle(server: Servers, pcm: np.ndarray, mode: str, speed: float, seen: list[str]) -> str:
    """One connect → speak → leave; the outcome ("clean", "mid_reply", "abrupt", or an error).
    `seen`: where the cycle got to and the kinds of message it read, for a closed cycle's log."""
    async with open_websocket_url(server.ws_url, disconnect_timeout=2) as ws:
        await ws.send_message(json.dumps({"type": "session.start", "v": 1, "sample_rate": RATE}))
        reply = json.loads(await ws.get_message())
        if reply.get("type") != "session.started":
            return f"refused:{reply.get('code')}"
        start = trio.current_time()
        cut = len(pcm) // 2 if mode == "abrupt" else len(pcm)
        seen.append("sending")
        for i in range(0, cut, FRAME):
            await ws.send_message(pcm[i : i + FRAME].tobytes())
            await trio.sleep_until(start + (i + FRAME) / RATE / speed)
        seen.append("sent")
        if mode == "abrupt":
            # Drop the TCP connection with no close frame: what a vanished phone does.
            ws._stream.socket.close()  # type: ignore[attr-defined]
            return "abrupt"
        if mode == "clean":
            await ws.send_message(json.dumps({"type": "audio.end", "v": 1}))
            seen.append("audio.end")
        with trio.move_on_after(10):
            while True:
                message = await ws.get_message()
                if mode == "mid_reply" and isinstance(message, bytes):
                    return "mid_reply"  # close now, the reply still playing
                if isinstance(message, str):
                    event = json.loads(message)
                    kind = event.get("type")
                    seen.append(f"{kind}:{event.get('code')}" if kind == "error" else str(kind))
                    if kind in ("turn.ended", "session.ended"):
                        return "clean"
        return f"{mode}:no_reply"


async def guarded(
    server: Servers, pcm: np.ndarray, mode: str, speed: float, log_closed: bool = False
) -> str:
    seen: list[str] = []
    try:
        with trio.move_on_after(30):
            return await cycle(server, pcm, mode, speed, seen)
        return f"{mode}:timeout"
    except ConnectionClosed as exc:
        # the close code says who closed and why (1000: the server's normal end; 1006: dropped)
        if log_closed:
            print(f"closed {mode} {exc.reason} after {seen}", file=sys.stderr, flush=True)
        return f"{mode}:closed:{exc.reason.code}"
    except (OSError, trio.BrokenResourceError) as exc:
        return f"{mode}:{type(exc).__name__}"
    except Exception as exc:  # a refused handshake and the like: counted, the soak goes on
        return f"{mode}:{type(exc).__name__}"


def leaf_names(exc: BaseException) -> list[str]:
    """The exceptions inside a (nested) group, named; a ConnectionClosed with its close code."""
    if isinstance(exc, BaseExceptionGroup):
        return [name for inner in exc.exceptions for name in leaf_names(inner)]
    if isinstance(exc, ConnectionClosed):
        return [f"ConnectionClosed:{exc.reason.code}"]
    return [type(exc).__name__]


def sample(server: Servers, cycles: int, started: float) -> dict[str, Any]:
    """The server processes summed (and, with several, each one's RSS)."""
    s = server.sample()
    out = {
        "cycles": cycles,
        "t_s": round(time.perf_counter() - started, 1),
        "rss_mb": round(s.rss_bytes / 2**20, 1),
        "fds": s.fds,
        "threads": s.threads,
        "cpu_s": round(s.cpu_s, 1),
        "load_1m": float(Path("/proc/loadavg").read_text().split()[0]),
    }
    if len(server.processes) > 1:
        out["rss_mb_by_process"] = [
            round(proc_sample(p.process.pid).rss_bytes / 2**20, 1) for p in server.processes
        ]
    return out


def speech_then_silence(seconds: float) -> np.ndarray:
    """ "go forward ten meters" (16 kHz), then `seconds` of silence."""
    raw = (shared_audio_dir() / "pocketsphinx_goforward.raw").read_bytes()
    speech = np.frombuffer(raw, "<i2").astype(np.int16)
    return np.concatenate([speech, np.zeros(round(RATE * seconds), np.int16)])


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    pcm = speech_then_silence(0.5)
    modes = ("clean", "mid_reply", "abrupt")
    outcomes: dict[str, int] = {}
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    argv = ["-m", "bargein.benchmarks.load", "--serve", args.engines]
    async with serving(argv, args.server_processes) as server:
        samples.append({"phase": "idle", **sample(server, 0, started)})
        done = 0
        limiter = trio.CapacityLimiter(args.concurrency)

        async def one(i: int) -> None:
            nonlocal done
            async with limiter:
                outcome = await guarded(server, pcm, modes[i % 3], args.speed, args.log_closed)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                done += 1
                if done % args.sample_every == 0:
                    samples.append(sample(server, done, started))

        with trio.move_on_after(args.max_seconds) as bound:
            async with trio.open_nursery() as nursery:
                for i in range(args.cycles):
                    await limiter.acquire_on_behalf_of(i)  # start no more than can run
                    limiter.release_on_behalf_of(i)
                    nursery.start_soon(one, i)
        await trio.sleep(3)  # let the server finish closing the last sessions
        samples.append({"phase": "after", **sample(server, done, started)})
        alive = all(p.alive for p in server.processes)
    idle, last = samples[0], samples[-1]
    running = [s for s in samples if "phase" not in s]
    warm = next((s for s in running if s["cycles"] >= max(done // 20, 1)), idle)
    loaded_end = running[-1] if running else idle
    return {
        "engines": args.engines,
        "server_processes": args.server_processes,
        "cycles_requested": args.cycles,
        "cycles_done": done,
        "stopped_by_time_bound": bound.cancelled_caught,
        "seconds": round(time.perf_counter() - started, 1),
        "outcomes": dict(sorted(outcomes.items())),
        "server_alive": alive,
        # fds and threads: the idle server before the first cycle against the idle server after
        # the last (3 s later); RSS: under load after the warm-up (5 % of the cycles) against
        # under load at the end, and the idle server after.
        "idle_before": idle,
        "idle_after": last,
        "fds_delta": last["fds"] - idle["fds"],
        "threads_delta": last["threads"] - idle["threads"],
        "rss_after_warmup_mb": warm["rss_mb"],
        "rss_loaded_end_mb": loaded_end["rss_mb"],
        "rss_change_pct": round(100 * (loaded_end["rss_mb"] - warm["rss_mb"]) / warm["rss_mb"], 1),
        "samples": samples,
    }


async def hold(args: argparse.Namespace) -> dict[str, Any]:
    """`--hold N`: N sessions at once for `--hold-seconds`, sampled every 15 s. The sessions are
    `bench load`'s clients (its raw RFC 6455 client, one pacer for every client's audio, phases
    staggered over one utterance cycle), so the hold also says how many utterances got a reply
    and how fast."""
    pcm = speech_then_silence(0.0)
    cycle_s = len(pcm) / RATE + args.hold_gap
    utterances = max(1, round(args.hold_seconds / cycle_s))
    samples: list[dict[str, Any]] = []
    started = time.perf_counter()
    argv = ["-m", "bargein.benchmarks.load", "--serve", args.engines]
    async with serving(argv, args.server_processes) as server:
        samples.append({"phase": "idle", **sample(server, 0, started)})

        async def sampler() -> None:
            while True:
                await trio.sleep(15)
                samples.append(sample(server, 0, started))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sampler)
            step = await run_step(server, args.hold, pcm, utterances, args.hold_gap, P99_BOUND_S)
            nursery.cancel_scope.cancel()
        # Every client left within one cycle: poll (up to 60 s) until the server is back to its
        # idle fds (± 5), and say how long that took.
        left = time.perf_counter()
        settle_s: float | None = None
        while time.perf_counter() - left < 60:
            await trio.sleep(1)
            if server.sample().fds <= samples[0]["fds"] + 5:
                settle_s = round(time.perf_counter() - left, 1)
                break
        samples.append({"phase": "after", **sample(server, 0, started)})
        alive = all(p.alive for p in server.processes)
    idle, last = samples[0], samples[-1]
    loaded = [s for s in samples if "phase" not in s]
    # RSS while held: from the first sample after every client had started (one cycle of
    # staggered starts) to the last one taken while they were all still there.
    t0 = idle["t_s"]
    held = [s for s in loaded if t0 + cycle_s + 15 <= s["t_s"] <= t0 + args.hold_seconds]
    return {
        "engines": args.engines,
        "server_processes": args.server_processes,
        "sessions": args.hold,
        "hold_seconds": args.hold_seconds,
        "utterances_per_session": utterances,
        "replies": {k: step[k] for k in HOLD_STEP_FIELDS},
        "server_alive": alive,
        "idle_before": idle,
        "idle_after": last,
        "fds_delta": last["fds"] - idle["fds"],
        "threads_delta": last["threads"] - idle["threads"],
        "settled_after_s": settle_s,  # None: not back to idle fds within 60 s
        "rss_held_first_mb": held[0]["rss_mb"] if held else None,
        "rss_held_last_mb": held[-1]["rss_mb"] if held else None,
        "rss_held_change_pct": (
            round(100 * (held[-1]["rss_mb"] - held[0]["rss_mb"]) / held[0]["rss_mb"], 1)
            if len(held) > 1
            else None
        ),
        "load_1m_range": [min(s["load_1m"] for s in samples), max(s["load_1m"] for s in samples)],
        "samples": samples,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench/soak.py", description=__doc__.split("\n")[0])
    parser.add_argument("--cycles", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--engines", choices=("scripted", "embedded"), default="scripted")
    # Ingress allows real time plus a 2 s burst (SessionConfig.ingress_burst_ms): 3.3 s of audio
    # at 2x fits, faster would be cut (counted) and the reply lost.
    parser.add_argument("--speed", type=float, default=2.0, help="audio sent at N x real time")
    parser.add_argument("--sample-every", type=int, default=250)
    parser.add_argument("--max-seconds", type=float, default=3600.0)
    parser.add_argument(
        "--hold", type=int, default=0, help="instead: hold N sessions at once (see --hold-seconds)"
    )
    parser.add_argument("--hold-seconds", type=float, default=600.0)
    parser.add_argument(
        "--server-processes",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT, as bench load); sampled summed",
    )
    parser.add_argument(
        "--hold-gap", type=float, default=5.0, help="s of silence after each held utterance"
    )
    parser.add_argument(
        "--log-closed", action="store_true", help="say on stderr what each closed cycle saw"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = trio.run(hold if args.hold else soak, args)
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
