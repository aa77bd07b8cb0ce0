"""`bargein bench realtime`: the OpenAI-Realtime endpoint over loopback, with scripted engines.

The official `openai` SDK's Realtime client (in a thread) talks to the real hypercorn server on
127.0.0.1. Each round streams a shared recording as `input_audio_buffer.append` (server VAD);
while the long reply plays it streams the recording again over it (a barge-in). All times are
the client's clock (`time.perf_counter`):

- `speech_end_to_first_audio_delta_ms`: first `response.output_audio.delta` − when the client
  sent the chunk holding the speech end (`speech_stopped.audio_end_ms`); includes the VAD's
  endpointing silence (`silence_duration_ms`).
- `speech_stopped_to_first_audio_delta_ms`: the same from `speech_stopped`'s arrival.
- `barge_in_to_response_done_ms`: `response.done` (cancelled, turn_detected) − the barge-in
  decision, i.e. the arrival of the `input_audio_buffer.speech_started` it cancels on (onset
  policy: the floor decides at that event).
"""

from __future__ import annotations

import argparse
import bisect
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import trio

from bargein.benchmarks.common import emit, percentiles
from bargein.engines.base import Engines
from bargein.testing.audio import load, silence
from bargein.testing.realtime import RealtimeClient, b64, realtime_client, to_24k
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import running
from bargein.transports.access import AccessConfig
from bargein.transports.app import DemoServer

TOKEN = "bench-realtime"
LONG = ("Here is a long answer that keeps talking for a good while so that the user has "
        "plenty of time to interrupt it somewhere in the middle of a sentence.")


def _stream(c: RealtimeClient, pcm: np.ndarray, speed: float, sent: list[tuple[float, float]],
            offset_ms: float) -> float:
    """Append `pcm` (24 kHz) in 20 ms chunks at `speed`; record (media end ms, send time)."""
    step, start = 480, time.perf_counter()
    for n, at in enumerate(range(0, len(pcm), step)):
        c.conn.input_audio_buffer.append(audio=b64(pcm[at : at + step]))
        sent.append((offset_ms + (at + step) / 24, time.perf_counter()))
        delay = start + (n + 1) * 0.02 / speed - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    return offset_ms + len(pcm) / 24


def _done_of(rid: str, *, other: bool = False) -> Callable[[dict[str, Any]], bool]:
    def pred(e: dict[str, Any]) -> bool:
        return bool(e["type"] == "response.done" and (e["response"]["id"] != rid) == other)

    return pred


def _rounds(port: int, rounds: int, speed: float) -> dict[str, Any]:
    speech = to_24k(np.concatenate([load("pocketsphinx_goforward.raw"), silence(900)]))
    first_audio: list[float] = []
    from_stopped: list[float] = []
    barge: list[float] = []
    failures = 0
    with realtime_client(port, TOKEN) as c:
        c.wait_type("session.created")
        sent: list[tuple[float, float]] = []
        media = 0.0
        for _ in range(rounds):
            after = len(c.events)
            media = _stream(c, speech, speed, sent, media)
            i_stop, stopped = c.wait_type("input_audio_buffer.speech_stopped", after)
            i_created, created = c.wait_type("response.created", i_stop)
            rid = created["response"]["id"]
            i_delta, _ = c.wait_type("response.output_audio.delta", i_created, response_id=rid)
            t_delta = c.times[i_delta]
            ends = [m for m, _ in sent]
            k = min(bisect.bisect_left(ends, stopped["audio_end_ms"]), len(sent) - 1)
            first_audio.append(1000 * (t_delta - sent[k][1]))
            from_stopped.append(1000 * (t_delta - c.times[i_stop]))
            media = _stream(c, speech, speed, sent, media)  # over the reply
            i_done, done = c.wait(_done_of(rid), i_delta)
            starts = [i for i in range(i_delta, i_done)
                      if c.events[i]["type"] == "input_audio_buffer.speech_started"]
            details = done["response"].get("status_details") or {}
            if done["response"]["status"] != "cancelled" or not starts or details.get(
                    "reason") != "turn_detected":
                failures += 1
            else:
                barge.append(1000 * (c.times[i_done] - c.times[starts[0]]))
            # The reply to the interruption, so the next round starts from quiet.
            c.wait(_done_of(rid, other=True), i_done + 1)
        invalid = len(c.invalid)
        errors = [e["error"]["code"] for e in c.events if e["type"] == "error"]
    return {
        "speech_end_to_first_audio_delta_ms": percentiles(first_audio),
        "speech_stopped_to_first_audio_delta_ms": percentiles(from_stopped),
        "barge_in_to_response_done_ms": percentiles(barge),
        "barge_in_failures": failures,
        "events_failing_sdk_validation": invalid,
        "error_events": errors,
    }


async def _run(rounds: int, speed: float) -> dict[str, Any]:
    stt = ScriptedStt([], default="go forward ten meters")
    planner = ScriptedPlanner([LONG, "Okay."], tokens_per_second=0)
    tts = ScriptedTts(24000, ms_per_char=50)

    def factory(options: Any) -> Engines:
        return Engines(stt, planner, tts)

    server = DemoServer(factory, access=AccessConfig(token=TOKEN))
    async with running(server) as port:
        figures = await trio.to_thread.run_sync(_rounds, port, rounds, speed)
    return {
        "benchmark": "realtime",
        "transport": "OpenAI Realtime GA over WebSocket, official openai SDK client, loopback",
        "engines": "scripted (no model latency): figures are the endpoint and runtime",
        "rounds": rounds,
        "input_speed": speed,
        "silence_duration_ms": 500,
        **figures,
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bargein bench realtime", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--speed", type=float, default=1.0,
                        help="input audio pace, x real time (above 1 the server's 10 s input "
                        "burst runs out after a few rounds: rate_limited)")
    args = parser.parse_args(argv)
    emit(trio.run(_run, args.rounds, args.speed), args.json)
    return 0
