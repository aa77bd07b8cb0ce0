"""Telephony benchmark: concurrent phone calls through the carrier simulator on loopback.

Serves the demo app (real hypercorn, the light embedded engines: pocketsphinx and espeak-ng,
with a scripted long reply so every call has something to interrupt) and places `--calls`
simulated Twilio calls at once, each in real time: the caller speaks a recording, hears the
reply through the simulated jitter buffer, talks over it after `--barge-after` s, then hangs
up. The simulator runs in the same process as the server, so CPU figures include it.

Figures:
- `cpu_per_call_pct`: process CPU time / wall time / calls, in % of one core (server + simulator).
- `pacing_jitter_ms`: |gap between consecutive `media` messages - 20 ms| while a reply streams
  (the first `lead` burst of each reply excluded), nearest-rank p50/p99.
- `lead_ahead_ms`: how far ahead of real time our media got, per reply (bound: `lead_ms`).
- `barge_in_to_clear_ms`: the session's barge-in decision -> `clear` written to the socket.
- `speech_to_clear_ms`: the caller starts talking over the reply -> `clear` arrives (VAD
  onset included).
- `loop_stall_ms`: how late a 10 ms sleep of a probe task wakes (the event loop's stalls,
  which every figure above suffers too).
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import trio

from bargein.benchmarks.common import emit, percentiles
from bargein.engines.base import Engines
from bargein.engines.embedded import default_engines
from bargein.testing.audio import load
from bargein.testing.carrier import SimulatedCarrier, call
from bargein.testing.scripted import ScriptedPlanner
from bargein.testing.web import running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import OptionValue
from bargein.transports.telephony import EXTENSION, TWILIO, TelephonyServer
from bargein.transports.telephony.handler import DEFAULT_LEAD_MS

REPLY = (
    "Once upon a time there was a lighthouse keeper who counted the waves every night, and "
    "every night the sea sent one more wave than the night before, until the keeper ran out "
    "of numbers and had to invent new ones with his own two hands, one for every wave."
)


def _engines(options: Mapping[str, OptionValue]) -> Engines:
    return dataclasses.replace(default_engines(), planner=ScriptedPlanner([REPLY]))


async def _until(sim: SimulatedCarrier, predicate: Any, limit: float) -> bool:
    with trio.move_on_after(limit):
        while True:
            if predicate():
                return True
            await trio.sleep(0.01)
    return False


async def _one_call(port: int, barge_after: float, out: dict[str, list[float]]) -> None:
    async with call(port, TWILIO, parameters={"policy": "onset"}) as sim:
        await sim.play(load("pocketsphinx_cards_005.wav"))
        await sim.silence(0.5)
        if not await _until(sim, lambda: bool(sim.log.media_arrivals), 30):
            out["failed"].append(1)
            return
        await trio.sleep(barge_after)
        talk = trio.current_time()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(sim.play, load("deepspeech_arctic_a0024.wav"))
            cleared = await _until(sim, lambda: bool(sim.log.clears), 10)
            nursery.cancel_scope.cancel()
        if cleared:
            out["speech_to_clear"].append(1000 * (sim.log.clears[0] - talk))
        arrivals = list(sim.log.media_arrivals)  # the one reply of the call
        if cleared:
            arrivals = [t for t in arrivals if t < sim.log.clears[0]]
        gaps = np.diff(arrivals)
        burst = DEFAULT_LEAD_MS // 20 + 1
        out["jitter"].extend(abs(1000 * g - 20) for g in gaps[burst:])
        t0 = arrivals[0]
        out["ahead"].append(max(20 * i - 1000 * (t - t0) for i, t in enumerate(arrivals)))
        out["underruns"].append(sim.log.underruns)
        await sim.stop()
        await sim.closed.wait()


async def _probe_loop(stalls: list[float]) -> None:
    """How late a 10 ms sleep wakes: the event loop's own stalls, whatever their cause."""
    while True:
        due = trio.current_time() + 0.01
        await trio.sleep_until(due)
        stalls.append(1000 * (trio.current_time() - due))


async def _run(calls: int, barge_after: float) -> dict[str, Any]:
    server = DemoServer(_engines)
    out: dict[str, list[float]] = {
        k: [] for k in ("jitter", "ahead", "speech_to_clear", "underruns", "failed")
    }
    # Like a server at start-up: one pocketsphinx decoder per concurrent call loaded before the
    # calls (loading one holds the GIL for a while and would stall every call's pacing).
    await default_engines().stt.warm(decoders=calls)  # type: ignore[attr-defined]
    stalls: list[float] = []
    async with running(server) as port:
        telephony = server.app.extensions[EXTENSION]
        assert isinstance(telephony, TelephonyServer)
        wall, cpu = time.perf_counter(), time.process_time()
        async with trio.open_nursery() as nursery:
            probe = nursery.cancel_scope
            nursery.start_soon(_probe_loop, stalls)
            async with trio.open_nursery() as calls_nursery:
                for _ in range(calls):
                    calls_nursery.start_soon(_one_call, port, barge_after, out)
            probe.cancel()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        await telephony.wait_idle()
        decisions = []
        for record in telephony.records:
            barge, clears = record.written.barge_ins, record.written.clears
            if barge and clears:
                decisions.append(1000 * (clears[0] - barge[0]))
        ended = dict(telephony.stats.ended)
        rejections = dict(telephony.stats.rejections)
    return {
        "calls": calls,
        "calls_ended": ended,
        "calls_failed": len(out["failed"]),
        "carrier_rejections": rejections,
        "wall_s": round(wall, 3),
        "cpu_per_call_pct": round(100 * cpu / wall / calls, 2),
        "lead_ms": DEFAULT_LEAD_MS,
        "pacing_jitter_ms": percentiles(out["jitter"]),
        "lead_ahead_ms": percentiles(out["ahead"]),
        "barge_in_to_clear_ms": percentiles(decisions),
        "speech_to_clear_ms": percentiles(out["speech_to_clear"]),
        "caller_underruns": int(sum(out["underruns"])),
        "loop_stall_ms": percentiles(stalls),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bargein bench telephony", description=__doc__)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--calls", type=int, default=4, help="concurrent calls (default 4)")
    parser.add_argument(
        "--barge-after", type=float, default=2.0, help="s of reply before talking over it"
    )
    args = parser.parse_args(argv)
    result = trio.run(_run, args.calls, args.barge_after)
    emit(result, args.json)
    return 0
