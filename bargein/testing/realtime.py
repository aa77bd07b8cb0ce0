"""The official `openai` SDK's Realtime client against our `/v1/realtime`, for tests and the
benchmark. The SDK client is synchronous here (websockets' sync client): a trio test runs it in
a worker thread (`trio.to_thread.run_sync`) while the server runs on the trio loop. Every server
event is validated strictly against the SDK's own `RealtimeServerEvent` types."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import numpy as np
import trio
from pydantic import TypeAdapter

from bargein.dsp import float32_to_pcm16, pcm16_to_float32, resample
from bargein.engines.base import Engines
from bargein.runtime.messages import Int16Array
from bargein.testing.audio import load, silence
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import running
from bargein.transports.access import AccessConfig
from bargein.transports.app import DemoServer

Event = dict[str, Any]
# A hang guard for waits, never a speed bound (speed lives in the benchmark).
HANG_S = 120.0


def to_24k(pcm16k: Int16Array) -> Int16Array:
    return float32_to_pcm16(resample(pcm16_to_float32(pcm16k), 16000, 24000))


def b64(pcm: Int16Array) -> str:
    return base64.b64encode(np.ascontiguousarray(pcm, dtype="<i2").tobytes()).decode()


class RealtimeClient:
    """Records every server event (as validated JSON dicts, with the receive time)."""

    def __init__(self, connection: Any) -> None:
        from openai.types.realtime import RealtimeServerEvent

        self.conn = connection
        self.events: list[Event] = []
        self.times: list[float] = []
        self.invalid: list[tuple[Event, str]] = []
        self.closed = False
        self._adapter: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            while True:
                raw = self.conn.recv_bytes()
                now = time.perf_counter()
                event = json.loads(raw)
                try:
                    self._adapter.validate_python(event)
                except Exception as exc:  # recorded: the tests assert there is none
                    self.invalid.append((event, str(exc)[:500]))
                with self._cond:
                    self.events.append(event)
                    self.times.append(now)
                    self._cond.notify_all()
        except Exception:
            with self._cond:
                self.closed = True
                self._cond.notify_all()

    def send(self, event: Event) -> None:
        self.conn.send(event)

    def send_raw(self, text: str) -> None:
        self.conn.send_raw(text)

    def wait(self, pred: Callable[[Event], bool], after: int = 0) -> tuple[int, Event]:
        """The first event at index >= `after` matching `pred` (waits for it)."""
        deadline = time.monotonic() + HANG_S
        with self._cond:
            while True:
                for i in range(after, len(self.events)):
                    if pred(self.events[i]):
                        return i, self.events[i]
                if self.closed:
                    raise ConnectionError("the connection closed")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("hang guard: the event never came")
                self._cond.wait(left)

    def wait_type(self, kind: str, after: int = 0, **fields: Any) -> tuple[int, Event]:
        return self.wait(
            lambda e: e["type"] == kind and all(e.get(k) == v for k, v in fields.items()), after
        )

    def types(self, after: int = 0) -> list[str]:
        with self._cond:
            return [e["type"] for e in self.events[after:]]

    def stream(self, pcm24: Int16Array, *, chunk_ms: int = 20, speed: float = 1.0,
               stop: Callable[[], bool] | None = None) -> None:
        """Append `pcm24` in chunks, paced at `speed` x real time."""
        step = 24 * chunk_ms
        start = time.perf_counter()
        for n, at in enumerate(range(0, len(pcm24), step)):
            if stop is not None and stop():
                return
            self.conn.input_audio_buffer.append(audio=b64(pcm24[at : at + step]))
            due = start + (n + 1) * chunk_ms / 1000 / speed
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)


@contextmanager
def realtime_client(port: int, token: str = "tok", model: str = "bargein-test",
                    **query: str) -> Iterator[RealtimeClient]:
    from openai import OpenAI

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=token, max_retries=0)
    with client.realtime.connect(model=model, extra_query=query) as conn:
        yield RealtimeClient(conn)


TOKEN = "tok-realtime"


def speech() -> Int16Array:
    """'go forward ten meters' (2.8 s) then 1 s of silence, at 24 kHz."""
    return to_24k(np.concatenate([load("pocketsphinx_goforward.raw"), silence(1000)]))


class ScriptedEngines:
    """Scripted STT/planner/TTS (24 kHz) shared by every session of a test server."""

    def __init__(self, transcripts: list[str], replies: Any) -> None:
        self.stt = ScriptedStt(transcripts, default="okay")
        self.planner = ScriptedPlanner(replies, tokens_per_second=50)
        self.tts = ScriptedTts(24000, ms_per_char=50)

    def factory(self, options: Any) -> Engines:
        return Engines(self.stt, self.planner, self.tts)


@asynccontextmanager
async def serve(engines: ScriptedEngines, token: str | None = TOKEN) -> AsyncIterator[int]:
    server = DemoServer(engines.factory, access=AccessConfig(token=token))
    async with running(server) as port:
        yield port


async def drive(port: int, scenario: Callable[[RealtimeClient], None], **kw: Any) -> None:
    def run() -> None:
        with realtime_client(port, TOKEN, **kw) as client:
            try:
                scenario(client)
            finally:
                assert client.invalid == [], client.invalid[:3]

    await trio.to_thread.run_sync(run)


def manual(c: RealtimeClient, **session: Any) -> None:
    c.wait_type("session.created")
    c.conn.session.update(session={"type": "realtime",
                                   "audio": {"input": {"turn_detection": None}}, **session})
    c.wait_type("session.updated")


def say(c: RealtimeClient, text: str) -> None:
    c.conn.conversation.item.create(item={
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
