"""The clients of `bargein bench load` (and `bench scale`): one WebSocket client streaming a
recording in real time and reporting playback as a page would, what it saw, and the tally of a
step's clients. The server side and the sweep are in `bargein.benchmarks.load`."""

from __future__ import annotations

import heapq
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import trio

from bargein.benchmarks.common import percentiles
from bargein.benchmarks.raw_websocket import (
    OP_BINARY,
    OP_TEXT,
    ConnectionClosed,
    Message,
    RawWebSocket,
    client_frames,
)
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
    pings_answered: int = 0  # the server's liveness pings (an RFC 6455 client answers them)
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


class Pacer:
    """Sends every client's audio frames at their times from one task, a frame never before its
    time and at most one wake-up per `quantum` s: with a task per client, each 20 ms frame cost
    a task switch and a timer (10,000 a second for 200 clients). Each client is one entry in a
    heap keyed by its next frame's time; an utterance's frames are masked when it starts."""

    def __init__(self, quantum: float = 0.001) -> None:
        self.quantum = quantum
        self._heap: list[tuple[float, int, _Stream]] = []
        self._seq = 0
        self._wake = trio.Event()

    async def stream(
        self, ws: RawWebSocket, pcm: np.ndarray, utterances: int, gap_s: float, result: ClientResult
    ) -> None:
        """Stream `utterances` times `pcm` + `gap_s` of silence on `ws` in real time from now;
        return when done (`ConnectionClosed` if a write failed)."""
        stream = _Stream(ws, pcm, utterances, gap_s, result, trio.current_time())
        self._push(stream.next_at(), stream)
        await stream.done.wait()
        if stream.failed is not None:
            raise stream.failed

    def _push(self, at: float, stream: _Stream) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, stream))
        self._wake.set()

    async def run(self) -> None:
        heap = self._heap
        while True:
            now = trio.current_time()
            while heap and heap[0][0] <= now:
                _, _, stream = heapq.heappop(heap)
                at = stream.step()
                if at is not None:
                    self._seq += 1
                    heapq.heappush(heap, (at, self._seq, stream))
            self._wake = trio.Event()  # a new client's first frame is due at once
            with trio.move_on_at(max(heap[0][0], now + self.quantum) if heap else math.inf):
                await self._wake.wait()


class _Stream:
    """One client's frames: utterance after utterance, each frame due at the end of the one
    before it (the first at the utterance's start), as a client that sends a frame and sleeps
    until its end would send them."""

    def __init__(
        self, ws: RawWebSocket, pcm: np.ndarray, utterances: int, gap_s: float,
        result: ClientResult, began: float,
    ) -> None:  # fmt: skip
        silence = np.zeros(int(gap_s * RATE), np.int16)
        self.payloads = [
            a[i : i + FRAME].tobytes() for a in (pcm, silence) for i in range(0, len(a), FRAME)
        ]
        # Send time of each frame from the utterance's start; the cycle ends after the last.
        ends = np.cumsum([len(p) // 2 for p in self.payloads]) / RATE
        self.offsets: list[float] = [0.0, *ends[:-1].tolist()]
        self.cycle_s = float(ends[-1])
        self.ws, self.result, self.utterances = ws, result, utterances
        self.began = self.start = began
        self.frames: list[bytes] = []
        self.index = 0  # next frame of the utterance under way
        self.done = trio.Event()
        self.failed: ConnectionClosed | None = None

    def next_at(self) -> float:
        if self.index < len(self.offsets):
            return self.start + self.offsets[self.index]
        return self.start + self.cycle_s

    def step(self) -> float | None:
        """Do what is due (send the next frame, or end the cycle); when to call again."""
        if self.index == len(self.offsets):  # the cycle (utterance and gap) is over
            self.result.speech_ends.append(self.start + SPEECH_END_S)
            self.start += self.cycle_s
            self.result.active_s = self.start - self.began
            self.index, self.frames = 0, []
            if len(self.result.speech_ends) >= self.utterances:
                self.done.set()
                return None
            return self.next_at()
        if not self.frames:
            self.frames = client_frames(OP_BINARY, self.payloads)  # fresh keys per utterance
        try:
            self.ws.write(self.frames[self.index])
        except ConnectionClosed as exc:
            self.failed = exc
            self.done.set()
            return None
        self.index += 1
        return self.next_at()


async def _client(
    url: str, pcm: np.ndarray, utterances: int, gap_s: float, delay: float, result: ClientResult,
    pacer: Pacer | None = None,
) -> None:  # fmt: skip
    """One speaker: connect, start a session, stream, leave (the close handshake). Its audio
    goes out through `pacer` (one of its own if None)."""
    await trio.sleep(delay)
    host_port, _, path = url.removeprefix("ws://").partition("/")
    host, _, port = host_port.rpartition(":")
    ws = await RawWebSocket.connect(host, int(port), "/" + path)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ws.run_writer)
            ws.send_text(json.dumps({"type": "session.start", "v": 1, "sample_rate": RATE}))
            first, *rest = await ws.receive()
            reply = json.loads(first[1]) if first[0] == OP_TEXT else {}
            if reply.get("type") != "session.started":
                result.errors.append(str(reply.get("code")))
            else:
                result.connected = True
                nursery.start_soon(_receive, ws, result, rest)
                if pacer is None:
                    pacer = Pacer()
                    nursery.start_soon(pacer.run)
                await pacer.stream(ws, pcm, utterances, gap_s, result)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await ws.aclose()
        result.pings_answered = ws.pings_answered


async def _receive(ws: RawWebSocket, result: ClientResult, early: list[Message]) -> None:
    turn = 0
    received: dict[int, int] = {}
    last_arrival: float | None = None
    frames_in_turn = 0
    last_report = 0.0
    try:
        while True:
            messages, early = early or await ws.receive(), []
            now = trio.current_time()
            for opcode, payload in messages:
                if opcode == OP_BINARY:
                    # Played = received (the client plays at once); the 12-byte header is no
                    # audio, and reporting it as played would be refused as `playback_ahead`.
                    samples = (len(payload) - AUDIO_HEADER.size) // 2
                    if turn not in result.first_audio:
                        result.first_audio[turn] = now
                    frames_in_turn += 1
                    if last_arrival is not None and frames_in_turn > 4:  # after the egress lead
                        result.jitter_ms.append(abs(now - last_arrival - samples / RATE) * 1000)
                    last_arrival = now
                    received[turn] = received.get(turn, 0) + samples
                    if now - last_report >= 0.1:
                        last_report = now
                        ws.send_text(_playback(turn, received[turn]))
                    continue
                if opcode != OP_TEXT:
                    continue  # pings and closes: answered by the connection
                event = json.loads(payload)
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
                    ws.send_text(_playback(turn, received[turn]))
    except ConnectionClosed:
        return


def _playback(turn: int, played: int) -> str:
    return json.dumps({"type": "playback", "v": 1, "turn": turn, "played_samples": played})


def percentile(values: Sequence[float], p: int) -> float:
    """Nearest rank, as every `bargein bench` figure (`common.percentiles`)."""
    return percentiles(values, (p,))[f"p{p}"]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
