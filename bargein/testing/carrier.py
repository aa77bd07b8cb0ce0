"""A simulated carrier (Twilio or Telnyx Media Streams) for tests and benchmarks.

It connects to the server's `/twilio` or `/telnyx` over a real socket and behaves like the
carrier's side of a call: sends `connected` and `start`, plays a recording in as the caller
would (real time, 20 ms μ-law `media` messages with `chunk`/`timestamp`/sequence numbers),
plays our `media` back through a simulated jitter buffer (playout starts once `prefill_ms` of
audio is queued, then one 20 ms frame per tick), echoes each of our `mark`s when the audio
queued before it has played, echoes every queued mark at once on `clear` (dropping the queued
audio), and records what the caller heard. It does not model the caller's echo of our voice.
"""

from __future__ import annotations

import base64
import json
import random
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, wrap_client_stream

from bargein.dsp import Resampler, alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from bargein.runtime.messages import Int16Array
from bargein.transports.telephony.carriers import TWILIO, Carrier

FRAME = 160  # 20 ms at 8 kHz
TICK = 0.02


@dataclass(frozen=True, slots=True)
class EchoedMark:
    name: str
    at: float  # trio clock
    by_clear: bool  # echoed because a `clear` dropped it, not because it played


@dataclass(slots=True)
class CallerLog:
    media_arrivals: list[float] = field(default_factory=list)
    marks: list[EchoedMark] = field(default_factory=list)
    clears: list[float] = field(default_factory=list)
    heard: list[Int16Array] = field(default_factory=list)  # played frames, in order
    underruns: int = 0
    unexpected: list[str] = field(default_factory=list)  # frames we could not understand
    closed_code: int | None = None

    @property
    def heard_pcm(self) -> Int16Array:
        return np.concatenate(self.heard) if self.heard else np.zeros(0, np.int16)

    def marks_before_clear(self) -> list[str]:
        return [m.name for m in self.marks if not m.by_clear]


def to_8k(pcm: Int16Array, rate: int = 16000) -> Int16Array:
    if rate == 8000:
        return pcm
    resampler = Resampler(rate, 8000)
    return np.concatenate([resampler.process_int16(pcm), resampler.flush_int16()])


class SimulatedCarrier:
    def __init__(
        self,
        ws: WebSocketConnection,
        carrier: Carrier = TWILIO,
        *,
        encoding: str | None = None,
        prefill_ms: int = 60,
        shuffle: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.ws = ws
        self.carrier = carrier
        self.encoding = encoding or carrier.encodings[0][0]
        self.alaw = carrier.codec_of(self.encoding) == "alaw"
        self.prefill = prefill_ms / 1000
        # Probability that a media message is sent after the next one (Telnyx reordering).
        self.shuffle = shuffle
        self._random = random.Random(seed)
        self.stream_id = "MZ" + "0" * 30 if carrier.name == "twilio" else "stream-1"
        self.log = CallerLog()
        self.closed = trio.Event()
        self._seq = 0
        self._chunk = 0
        self._started_at: float | None = None
        self._buffer: deque[tuple[str, Any]] = deque()
        self._arrived = trio.Event()
        self._held: str | None = None
        self._outbox, self._echoes = trio.open_memory_channel[str](10000)

    # -- caller -> server ---------------------------------------------------------------------

    async def _send(self, event: str, **body: Any) -> None:
        self._seq += 1
        obj: dict[str, Any] = {"event": event, self.carrier.sequence_key: str(self._seq)}
        obj[self.carrier.stream_key] = self.stream_id
        obj.update(body)
        frame = json.dumps(obj)
        if event == "media" and self.shuffle and self._held is None:
            if self._random.random() < self.shuffle:
                self._held = frame
                return
        await self.send_raw(frame)
        if self._held is not None:
            held, self._held = self._held, None
            await self.send_raw(held)

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send_message(frame)

    async def start(self, parameters: Mapping[str, str] | None = None) -> None:
        await self.send_raw(json.dumps({"event": "connected", "protocol": "Call", "version": "1"}))
        c = self.carrier
        rate_key = "sampleRate" if c.name == "twilio" else "sample_rate"
        body = {
            c.stream_key: self.stream_id,
            c.call_key: "CA" + "1" * 32,
            "tracks": ["inbound"],
            c.format_key: {"encoding": self.encoding, rate_key: 8000, "channels": 1},
            c.params_key: dict(parameters or {}),
        }
        await self._send("start", start=body)
        self._started_at = trio.current_time()

    def encode(self, pcm: Int16Array) -> str:
        codes = alaw_encode(pcm) if self.alaw else ulaw_encode(pcm)
        return base64.b64encode(bytes(np.asarray(codes, np.uint8))).decode()

    async def play(
        self, pcm: Int16Array, rate: int = 16000, *, until: Callable[[], bool] | None = None
    ) -> None:
        """Speak `pcm` into the call in real time (20 ms media messages, like the carrier);
        with `until`, stop at the first frame boundary where it is true (the caller falls
        silent there, as someone who got what they wanted)."""
        pcm8 = to_8k(pcm, rate)
        begin = trio.current_time()
        for i, at in enumerate(range(0, len(pcm8), FRAME)):
            # A frame is sent once all of it has been captured.
            await trio.sleep_until(begin + (i + 1) * TICK)
            if until is not None and until():
                return
            await self.media(pcm8[at : at + FRAME])

    async def media(self, pcm8: Int16Array) -> None:
        self._chunk += 1
        started = self._started_at if self._started_at is not None else trio.current_time()
        await self._send(
            "media",
            media={
                "track": "inbound",
                "chunk": str(self._chunk),
                "timestamp": str(round(1000 * (trio.current_time() - started))),
                "payload": self.encode(pcm8),
            },
        )

    async def silence(self, seconds: float) -> None:
        await self.play(np.zeros(int(8000 * seconds), np.int16), 8000)

    async def dtmf(self, digit: str) -> None:
        await self._send("dtmf", dtmf={"track": "inbound_track", "digit": digit})

    async def stop(self) -> None:
        await self._send("stop", stop={self.carrier.call_key: "CA" + "1" * 32})

    # -- server -> caller ---------------------------------------------------------------------

    async def run(self) -> None:
        """Receive and play out until the server closes the stream."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._playout)
            try:
                while True:
                    self._received(await self.ws.get_message())
            except ConnectionClosed as closed:
                self.log.closed_code = closed.reason.code if closed.reason else None
            finally:
                self.closed.set()
                nursery.cancel_scope.cancel()

    def _received(self, frame: str | bytes) -> None:
        try:
            obj = json.loads(frame)
            event = obj["event"]
        except (ValueError, KeyError, TypeError):
            self.log.unexpected.append(str(frame)[:200])
            return
        now = trio.current_time()
        if event == "media":
            raw = base64.b64decode(obj["media"]["payload"])
            pcm = alaw_decode(raw) if self.alaw else ulaw_decode(raw)
            self.log.media_arrivals.append(now)
            self._buffer.append(("media", pcm))
        elif event == "mark":
            self._buffer.append(("mark", obj["mark"]["name"]))
        elif event == "clear":
            self.log.clears.append(now)
            for kind, item in self._buffer:
                if kind == "mark":
                    self._echo(item, by_clear=True)
            self._buffer.clear()
        else:
            self.log.unexpected.append(str(frame)[:200])
        self._arrived.set()

    def _echo(self, name: str, *, by_clear: bool) -> None:
        self.log.marks.append(EchoedMark(name, trio.current_time(), by_clear))
        frame = json.dumps(
            {"event": "mark", self.carrier.stream_key: self.stream_id, "mark": {"name": name}}
        )
        self._outbox.send_nowait(frame)

    async def _playout(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._send_echoes, self._echoes)
            while True:
                self._echo_leading_marks()
                if not any(kind == "media" for kind, _ in self._buffer):
                    self._arrived = trio.Event()
                    await self._arrived.wait()
                    continue
                # A jitter buffer: start playing once `prefill` has passed since audio came.
                await trio.sleep(self.prefill)
                due = trio.current_time()
                while True:
                    self._echo_leading_marks()
                    if not self._buffer:
                        self.log.underruns += 1
                        break
                    kind, pcm = self._buffer.popleft()
                    assert kind == "media"
                    self.log.heard.append(pcm)
                    due += len(pcm) / 8000
                    await trio.sleep_until(due)

    def _echo_leading_marks(self) -> None:
        while self._buffer and self._buffer[0][0] == "mark":
            self._echo(self._buffer.popleft()[1], by_clear=False)

    async def _send_echoes(self, outbox: trio.MemoryReceiveChannel[str]) -> None:
        async for frame in outbox:
            seq = self.carrier.sequence_key
            obj = json.loads(frame)
            self._seq += 1
            obj[seq] = str(self._seq)
            try:
                await self.send_raw(json.dumps(obj))
            except ConnectionClosed:
                return


@asynccontextmanager
async def call(
    port: int,
    carrier: Carrier = TWILIO,
    *,
    parameters: Mapping[str, str] | None = None,
    path: str | None = None,
    headers: Mapping[str, str] | None = None,
    host: str | None = None,
    start: bool = True,
    **options: Any,
) -> AsyncIterator[SimulatedCarrier]:
    """A simulated call to `/<carrier>` on 127.0.0.1:`port`, running for the block."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with trio.open_nursery() as nursery:
        ws = await wrap_client_stream(
            nursery,
            stream,
            host or f"127.0.0.1:{port}",
            path or f"/{carrier.name}",
            extra_headers=[(k.encode(), v.encode()) for k, v in (headers or {}).items()],
        )
        sim = SimulatedCarrier(ws, carrier, **options)
        nursery.start_soon(sim.run)
        if start:
            await sim.start(parameters)
        try:
            yield sim
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await ws.aclose()
            nursery.cancel_scope.cancel()


def words_heard(names: Sequence[str]) -> list[tuple[int, int]]:
    """(turn, samples) of our mark names ("b<n>.t<turn>.s<samples>")."""
    out = []
    for name in names:
        fields = {p[0]: int(p[1:]) for p in name.split(".")[1:]}
        out.append((fields["t"], fields["s"]))
    return out
