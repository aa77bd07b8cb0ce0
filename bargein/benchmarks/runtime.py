"""`bargein bench runtime`: what the runtime itself adds, on the real clock.

N concurrent sessions over the in-memory transport with zero-latency scripted engines, each fed
a real recording as live microphone audio (real webrtcvad) in a timeline where every new
utterance barges in on the previous reply. Figures are differences of stamped events:

- framework_latency_ms: turn_started (user turn end decided) → audio_out_first (first reply
  frame handed to the transport);
- barge_in_silence_ms: barge_in (interrupt decision) → output_cleared (egress has stopped
  handing the turn's audio to the transport);
- memory_per_session_kib: resident memory added per open idle session, over M sessions;
- media: the media plane's CPU per session swept over session counts (`bargein.benchmarks.media`),
  sessions that listen and answer (replies paced); its growth from 50 to 500 sessions (else the
  smallest to the largest count); media_listen_only: the same with sessions that only listen,
  the shape of the peer's media test; with `--peer-python` the peer's figure measured right
  after in the same run, and the ratios (pipecat's CPU per session over ours).
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import time
from typing import Any

import numpy as np
import trio

from bargein.actors.policy import InterruptionPolicy
from bargein.dsp import warm_up
from bargein.engines.base import Engines
from bargein.runtime.events import Event, EventType
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import feed_live, load, place
from bargein.testing.memory import MemoryTransport
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

from . import media
from .common import emit, percentiles, rss_kib

REPLY = (
    "Here is a reply that runs for a few seconds. It has more than one sentence in it. "
    "It keeps talking so that the next question can cut it short."
)


def scripted() -> Engines:
    return Engines(ScriptedStt(), ScriptedPlanner([REPLY]), ScriptedTts())


async def _one_session(
    audio: np.ndarray, delay: float, results: list[tuple[list[Event], int]]
) -> None:
    await trio.sleep(delay)
    transport = MemoryTransport()
    config = SessionConfig(policy=InterruptionPolicy(mode="onset"))
    events: list[Event] = []
    async with open_session(config, scripted(), transport) as session:
        session.bus.add_listener(events.append)
        await feed_live(session.push_audio, audio)
        session.end_input()
        with trio.move_on_after(30):
            await session.wait_ended()
    late = [
        f for t, f in transport.frames
        for b in events if b.type == EventType.BARGE_IN and f.turn == b.turn
        and t - session.bus.t0 > b.t
    ]
    results.append((events, len(late)))


def _pairs(events: list[Event], start: EventType, end: EventType) -> list[float]:
    begun = {e.turn: e.t for e in events if e.type == start}
    return [1000 * (e.t - begun[e.turn]) for e in events if e.type == end and e.turn in begun]


async def _concurrent(sessions: int, turns: int) -> dict[str, Any]:
    utterance = load("pocketsphinx_goforward.raw")
    audio = place(4000 * turns + 1000, *[(4000 * i, utterance) for i in range(turns)])
    results: list[tuple[list[Event], int]] = []
    rng = random.Random(7)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            nursery.start_soon(_one_session, audio, rng.uniform(0, 1.0), results)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    traces = [ev for ev, _ in results]
    latency = [
        x for ev in traces for x in _pairs(ev, EventType.TURN_STARTED, EventType.AUDIO_OUT_FIRST)
    ]
    silence = [
        x for ev in traces for x in _pairs(ev, EventType.BARGE_IN, EventType.OUTPUT_CLEARED)
    ]
    late = sum(n for _, n in results)
    turns_done = sum(1 for ev in traces for e in ev if e.type == EventType.TURN_STARTED)
    return {
        "sessions": sessions,
        "turns": turns_done,
        "barge_ins": len(silence),
        "framework_latency_ms": percentiles(latency),
        "barge_in_silence_ms": percentiles(silence),
        "frames_after_barge_in": late,
        "cpu_percent_of_core_per_session": round(100 * cpu / wall / sessions, 3),
        "wall_s": round(wall, 2),
    }


async def _idle_memory(count: int) -> float:
    async def hold(ready: trio.Event, release: trio.Event) -> None:
        async with open_session(SessionConfig(), scripted(), MemoryTransport()):
            ready.set()
            await release.wait()

    async def open_many(n: int, release: trio.Event, nursery: trio.Nursery) -> None:
        for _ in range(n):
            ready = trio.Event()
            nursery.start_soon(hold, ready, release)
            await ready.wait()

    warm, release_warm = 20, trio.Event()
    async with trio.open_nursery() as nursery:
        await open_many(warm, release_warm, nursery)  # first-use allocations are not per-session
        gc.collect()
        before = rss_kib()
        release = trio.Event()
        await open_many(count, release, nursery)
        await trio.sleep(0.5)
        gc.collect()
        after = rss_kib()
        release.set()
        release_warm.set()
    return round((after - before) / count, 1)


def against_targets(result: dict[str, Any]) -> dict[str, Any]:
    """The issue-16 figures under names that say what they are, each with its target (the
    same numbers as in `media`, `media_growth` and `pipecat_ratio`; absent if not measured)."""
    out: dict[str, Any] = {}
    answering = result.get("media", {}).get("n50")
    if answering:
        value = answering["cpu_percent_of_core_per_session"]
        out["answering_50_sessions_cpu_percent_of_core_per_session"] = {
            "value": value, "target_max": 0.25, "met": value <= 0.25,
            "cpu_us_per_frame_fed": answering["cpu_us_per_frame_fed"],
            "saturated": answering["saturated"],
        }
    listening = result.get("media_listen_only", {}).get("n50")
    if listening:
        value = listening["cpu_percent_of_core_per_session"]
        out["listening_50_sessions_cpu_percent_of_core_per_session"] = {
            "value": value, "target_max": 0.25, "met": value <= 0.25,
            "saturated": listening["saturated"],
        }
    growth = result.get("media_growth")
    if growth and (growth["from"], growth["to"]) == (50, 500):
        out["answering_growth_50_to_500_per_session"] = {
            "value": growth["ratio"], "target_max": 1.5, "met": growth["ratio"] <= 1.5,
        }
    ratio = result.get("pipecat_ratio", {}).get("n10")
    if ratio:
        out["pipecat_ratio_listening_10_sessions"] = {
            "value": ratio["ratio"], "target_min": 15, "met": ratio["ratio"] >= 15,
            "pipecat_saturated": ratio["pipecat_saturated"],
        }
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bargein bench runtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--sessions", type=int, default=50, help="concurrent sessions (50)")
    parser.add_argument("--turns", type=int, default=4, help="utterances per session (4)")
    parser.add_argument("--idle-sessions", type=int, default=500,
                        help="idle sessions for the memory figure (500)")
    parser.add_argument("--skip-latency", action="store_true",
                        help="only the media-plane sweep (no latency, barge-in, memory run)")
    parser.add_argument("--media-sessions", type=int, nargs="*", default=[10, 50, 500],
                        help="session counts for the media-plane CPU sweep (10 50 500; none: skip)")
    parser.add_argument("--media-secs", type=float, default=10.0,
                        help="measured window (10 s; for few sessions longer: at least 300 "
                        "session-seconds, up to 3x)")
    parser.add_argument("--media-warmup", type=float, default=2.0, help="warm-up (2 s)")
    parser.add_argument("--media-feeder", choices=("shared", "per-session"), default="shared",
                        help="one task feeds every session each 20 ms (shared, default), or a "
                        "feeder task with its own timer per session, as the peer does")
    parser.add_argument("--media-listen-sessions", type=int, nargs="*", default=[10, 50],
                        help="session counts for a second sweep where sessions only listen (VAD, "
                        "turns, empty replies: no audio paced), the shape of the peer's media "
                        "test (10 50; none: skip)")
    parser.add_argument("--peer-python", default=os.environ.get("BARGEIN_PEER_PYTHON"),
                        help="an interpreter with pipecat-ai installed: run the peer benchmark "
                        "right after ours ($BARGEIN_PEER_PYTHON)")
    parser.add_argument("--peer-sessions", type=int, nargs="*", default=[10, 50],
                        help="session counts for the peer's media run (10 50)")
    args = parser.parse_args(argv)

    async def run() -> dict[str, Any]:
        result: dict[str, Any] = {}
        if not args.skip_latency:
            result = await _concurrent(args.sessions, args.turns)
            result["memory_per_session_kib"] = await _idle_memory(args.idle_sessions)
            result["idle_sessions"] = args.idle_sessions
        sweep, listen = {}, {}
        for n in args.media_sessions:
            sweep[f"n{n}"] = await media.measure(
                n, args.media_secs, args.media_warmup,
                per_session_feeders=args.media_feeder == "per-session",
            )
        for n in args.media_listen_sessions:
            listen[f"n{n}"] = await media.measure(
                n, args.media_secs, args.media_warmup,
                per_session_feeders=args.media_feeder == "per-session", replies=False,
            )
        if listen:
            result["media_listen_only"] = listen
        if sweep:
            result["media"] = sweep
            counts = sorted(args.media_sessions)
            if {50, 500} <= set(counts):  # the target's range
                counts = [50, 500]
            if len(counts) > 1:
                lo, hi = sweep[f"n{counts[0]}"], sweep[f"n{counts[-1]}"]
                result["media_growth"] = {
                    "from": counts[0], "to": counts[-1],
                    "ratio": round(hi["cpu_percent_of_core_per_session"]
                                   / lo["cpu_percent_of_core_per_session"], 2),
                }
        result["targets"] = {
            "framework_latency_ms": {"p50": 2, "p99": 10},
            "barge_in_silence_ms": {"p99": 5},
            "memory_per_session_kib": 256,
            "media_cpu_percent_of_core_per_session": 0.25,
            "media_growth_50_to_500": 1.5,
            "pipecat_ratio": 15,
        }
        return result

    warm_up()  # as a server does at start-up; a first session would otherwise stall the loop
    result = trio.run(run)
    if args.peer_python and (result.get("media") or result.get("media_listen_only")):
        peer = media.run_peer(args.peer_python, args.peer_sessions, args.media_secs,
                              args.media_warmup)
        result["pipecat_media"] = peer.get("details", {}).get("media", {})
        result["pipecat_version"] = peer.get("pipecat_version")
        # Like for like: the peer's sessions only listen. Against our sessions that also
        # answer and pace replies, the ratio is conservative.
        result["pipecat_ratio"] = media.compare(result.get("media_listen_only", {}), peer)
        result["pipecat_ratio_vs_replying"] = media.compare(result.get("media", {}), peer)
    result["against_targets"] = against_targets(result)
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    emit(result, args.json)
    return 0
