"""The clients of `bargein bench load` (and `bench scale`): one WebSocket client streaming a
recording in real time and reporting playback as a page would, what it saw, and the tally of a
step's clients. The server side and the sweep are in `bargein.benchmarks.load`."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, open_websocket_url

from bargein.benchmarks.common import percentiles
from bargein.transports.protocol import AUDIO_HEADER

RATE = 16_000
FRAME = 320  # 20 ms
SPEECH_START_S = 0.48  # first voiced frame of the recording (docs of ../shared/audio)
SPEECH_END_S = 2.40  # end of the last voiced frame in the recording
STARTS = ("stagger", "lockstep")
LOCKSTEP_SPREAD_S = 1.0


def start_delays(n: int, start: str, cycle_s: float, seed: int) -> list[float]:
    """When each of ``n`` clients starts, in seconds after the step begins.

    ``lockstep``: uniform over 1 s, so every client speaks the same recording at nearly the same
    moment (all of them talk at once: the worst case for a server). ``stagger``: each client's
    phase is uniform over one utterance cycle (recording + gap, ``cycle_s``) and independent of
    the others, as people who do not hear each other are: some talk at the same moment, most
    not. Seeded, so a step is repeatable."""
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    if n < 0 or not cycle_s > 0:
        raise ValueError("need n >= 0 clients and a positive cycle")
    rng = random.Random(seed)
    spread = LOCKSTEP_SPREAD_S if start == "lockstep" else cycle_s
    return [rng.uniform(0, spread) for _ in range(n)]


def talking_at_once(speech_ends: Sequence[float]) -> tuple[int, float]:
    """(most, time-weighted mean) clients in a voiced stretch of the recording at the same
    moment, from each utterance's speech end (its voiced stretch is the 1.92 s before it); the
    mean is over the time anyone talked."""
    voiced = SPEECH_END_S - SPEECH_START_S
    # Ends sort before starts at the same instant: stretches that only touch do not overlap.
    edges = sorted([(end - voiced, 1) for end in speech_ends] + [(end, -1) for end in speech_ends])
    most = now = 0
    weighted = talked = 0.0
    for i, (at, step) in enumerate(edges):
        now += step
        most = max(most, now)
        if now > 0 and i + 1 < len(edges):
            span = edges[i + 1][0] - at
            weighted += now * span
            talked += span
    return most, (weighted / talked if talked else 0.0)


@dataclass
class ClientResult:
    speech_ends: list[float] = field(default_factory=list)  # trio time of each utterance's end
    turn_starts: list[float] = field(default_factory=list)
    first_audio: dict[int, float] = field(default_factory=dict)  # turn -> first frame time
    jitter_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    connected: bool = False
    active_s: float = 0.0  # from the first frame sent to the end of the last gap
    # Server messages by type; final transcripts by whether they were empty (why no reply).
    messages: dict[str, int] = field(default_factory=dict)


def _latencies(result: ClientResult) -> tuple[int, list[float]]:
    """(answered utterances, speech end → first audio of each answer), pairing each turn with
    the latest unanswered utterance that ended before the turn started."""
    answered: dict[int, float] = {}
    for turn, started in enumerate(result.turn_starts, start=1):
        first = result.first_audio.get(turn)
        if first is None:
            continue
        candidates = [i for i, end in enumerate(result.speech_ends) if end <= started]
        candidates = [i for i in candidates if i not in answered]
        if candidates:
            answered[candidates[-1]] = first - result.speech_ends[candidates[-1]]
    return len(answered), list(answered.values())


@dataclass(frozen=True)
class Tally:
    """What a step's clients saw, pooled (the one tally for `bench load` and `bench scale`)."""

    spoken: int
    answered: int
    latencies: list[float]  # speech end -> first audio of each answered utterance, seconds
    jitter_ms: list[float]
    errors: dict[str, int]
    messages: dict[str, int]


def tally(results: Sequence[ClientResult]) -> Tally:
    answered, latencies = 0, []
    errors: dict[str, int] = {}
    messages: dict[str, int] = {}
    for result in results:
        count, lat = _latencies(result)
        answered += count
        latencies += lat
        for error in result.errors:
            errors[error] = errors.get(error, 0) + 1
        for kind, n in result.messages.items():
            messages[kind] = messages.get(kind, 0) + n
    return Tally(
        spoken=sum(len(r.speech_ends) for r in results),
        answered=answered,
        latencies=latencies,
        jitter_ms=[j for r in results for j in r.jitter_ms],
        errors=errors,
        messages=messages,
    )


async def _client(
    url: str, pcm: np.ndarray, utterances: int, gap_s: float, delay: float, result: ClientResult
) -> None:
    await trio.sleep(delay)
    silence = np.zeros(int(gap_s * RATE), np.int16)
    async with open_websocket_url(url, disconnect_timeout=2) as ws:
        await ws.send_message(json.dumps({"type": "session.start", "v": 1, "sample_rate": RATE}))
        reply = json.loads(await ws.get_message())
        if reply.get("type") != "session.started":
            result.errors.append(str(reply.get("code")))
            return
        result.connected = True
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_receive, ws, result)
            began = trio.current_time()
            for _ in range(utterances):
                start = trio.current_time()
                for audio in (pcm, silence):
                    for i in range(0, len(audio), FRAME):
                        await ws.send_message(audio[i : i + FRAME].tobytes())
                        # Paced by the clock, not by the sum of sleeps (real-time, no drift).
                        sent = (i + FRAME) / RATE + (len(pcm) / RATE if audio is silence else 0)
                        await trio.sleep_until(start + sent)
                result.speech_ends.append(start + SPEECH_END_S)
                result.active_s = trio.current_time() - began
            nursery.cancel_scope.cancel()


async def _receive(ws: WebSocketConnection, result: ClientResult) -> None:
    turn = 0
    received: dict[int, int] = {}
    last_arrival: float | None = None
    frames_in_turn = 0
    last_report = 0.0
    try:
        while True:
            message = await ws.get_message()
            now = trio.current_time()
            if isinstance(message, bytes):
                # Played = received (the client plays at once); the 12-byte header is no audio,
                # and reporting it as played would be refused as `playback_ahead`.
                samples = (len(message) - AUDIO_HEADER.size) // 2
                if turn not in result.first_audio:
                    result.first_audio[turn] = now
                frames_in_turn += 1
                if last_arrival is not None and frames_in_turn > 4:  # after the egress lead
                    result.jitter_ms.append(abs(now - last_arrival - samples / RATE) * 1000)
                last_arrival = now
                received[turn] = received.get(turn, 0) + samples
                if now - last_report >= 0.1:
                    last_report = now
                    report = {"type": "playback", "v": 1, "turn": turn}
                    await ws.send_message(json.dumps({**report, "played_samples": received[turn]}))
                continue
            event = json.loads(message)
            kind = str(event.get("type"))
            if kind == "transcript.final" and not event.get("text"):
                kind = "transcript.final(empty)"
            elif kind == "error":
                kind = f"error:{event.get('code')}"
            result.messages[kind] = result.messages.get(kind, 0) + 1
            if event.get("type") == "turn.started":
                turn = int(event["turn"])
                result.turn_starts.append(now)
                last_arrival, frames_in_turn = None, 0
                # Keep our turn list aligned with the server's numbering.
                while len(result.turn_starts) < turn:
                    result.turn_starts.insert(-1, math.inf)
            elif event.get("type") == "turn.ended" and turn in received:
                final = {"type": "playback", "v": 1, "turn": turn}
                await ws.send_message(json.dumps({**final, "played_samples": received[turn]}))
    except ConnectionClosed:
        return


def percentile(values: Sequence[float], p: int) -> float:
    """Nearest rank, as every `bargein bench` figure (`common.percentiles`)."""
    return percentiles(values, (p,))[f"p{p}"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
