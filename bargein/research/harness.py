"""The trio side of the harness: run one scenario through a real session — the scenario's audio
is the microphone, a `Speaker` transport is the loudspeaker (and feeds echo back) — and collect
the event stream. Everything else (metrics, plots, tables) is pure and lives elsewhere."""

from __future__ import annotations

import dataclasses
import importlib
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import trio
import trio.testing

from bargein.engines.base import Engines, Recognizer
from bargein.research.audio import RATE, Truth, build_input
from bargein.research.policies import PolicySpec
from bargein.research.scenario import AudioItem, Scenario
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import Int16Array, OutFrame
from bargein.session import SessionConfig, open_session
from bargein.testing.scripted import PartialReveal, ScriptedPlanner, ScriptedTts

CHUNK_MS = 20
# Which item a VAD utterance belongs to: its onset may lead the energy-based truth by the VAD's
# onset window, or trail it a little.
_MATCH_EARLY_S = 0.35
_MATCH_LATE_S = 0.1
# Embedded planner answers "what time is it" from this clock, so runs repeat exactly.
FIXED_NOW = datetime(2024, 1, 1, 12, 0, 0)


@dataclass
class RunResult:
    scenario: Scenario
    policy: PolicySpec
    events: list[Event]
    truths: list[Truth]  # on the session clock
    segments: list[tuple[float, float, int]]  # assistant audio heard: start, end, turn
    mic: Int16Array  # what the session heard (scenario audio + echo)
    speaker: Int16Array  # assistant audio on the same timeline
    media_offset: float  # session time of input sample 0
    messages: tuple[ChatMessage, ...]
    end_reason: str


# -- scripted STT that knows which labelled item it is hearing -------------------------------


class ItemStt:
    """Scripted recognition per labelled item: each VAD utterance whose onset falls in an item
    takes the item's next transcript (then `default`), `final_ms` after the speech ends;
    partials reveal one word per `ms_per_word` of audio. The VAD's onset comes from the bus."""

    name = "scripted-items"

    def __init__(
        self,
        items: list[tuple[Truth, tuple[str, ...] | None]],
        *,
        default: str,
        final_ms: float,
        ms_per_word: float,
    ) -> None:
        self._items = sorted(items, key=lambda it: it[0].onset)
        self._queues = {t.label: list(ts) if ts is not None else None for t, ts in items}
        self.default = default
        self.final_ms = final_ms
        self.ms_per_word = ms_per_word
        self.onset: float | None = None

    def on_event(self, event: Event) -> None:
        if event.type == EventType.SPEECH_STARTED:
            self.onset = float(event.data["onset"])  # media time of the input

    def take(self) -> str:
        onset, label = self.onset, None
        if onset is not None:
            for truth, _ in self._items:
                if truth.onset - _MATCH_EARLY_S <= onset <= truth.offset + _MATCH_LATE_S:
                    label = truth.label
                    if truth.onset > onset:
                        break
        queue = self._queues.get(label) if label is not None else None
        return queue.pop(0) if queue else self.default

    def recognizer(self) -> Recognizer:
        return _ItemRecognizer(self)


class _ItemRecognizer:
    def __init__(self, engine: ItemStt) -> None:
        self._engine = engine
        self._text = ""
        self._reveal = PartialReveal()

    async def start_utterance(self) -> None:
        self._text = self._engine.take()
        self._reveal = PartialReveal()
        await trio.lowlevel.checkpoint()

    async def feed(self, pcm: Int16Array) -> str | None:
        await trio.lowlevel.checkpoint()
        return self._reveal.feed(self._text, len(pcm), self._engine.ms_per_word, RATE)

    async def end_utterance(self) -> str:
        await trio.sleep(self._engine.final_ms / 1000)
        return self._text

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


# -- the loudspeaker ---------------------------------------------------------------------------


@dataclass
class Speaker:
    """The transport: reply audio lands on the input's timeline as it is sent (no lead: sent is
    played), so echo can be mixed back into the microphone in real time."""

    t0: float = 0.0  # trio time of session time 0
    start: float = 0.0  # trio time of input sample 0
    track: Int16Array = field(default_factory=lambda: np.zeros(RATE * 10, np.int16))
    segments: list[tuple[float, float, int]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    length: int = 0

    async def send_audio(self, frame: OutFrame) -> None:
        now = trio.current_time()
        at = round((now - self.start) * RATE)
        end = at + len(frame.pcm)
        if end > len(self.track):
            grown = np.zeros(max(end, 2 * len(self.track)), np.int16)
            grown[: len(self.track)] = self.track
            self.track = grown
        if at >= 0:
            self.track[at:end] = frame.pcm
        self.length = max(self.length, end)
        t = now - self.t0
        seg_end = t + len(frame.pcm) / RATE
        last = self.segments[-1] if self.segments else None
        if last is not None and last[2] == frame.turn and abs(last[1] - t) < 1e-6:
            self.segments[-1] = (last[0], seg_end, frame.turn)
        else:
            self.segments.append((t, seg_end, frame.turn))
        await trio.lowlevel.checkpoint()

    async def send_clear(self, turn: int) -> None:
        await trio.lowlevel.checkpoint()  # sent is played: nothing is buffered to flush

    async def send_event(self, event: Event) -> None:
        self.events.append(event)
        await trio.lowlevel.checkpoint()

    def echo(self, at: int, n: int, item: AudioItem) -> np.ndarray:
        """The echo item's contribution to input samples [at, at + n)."""
        assert item.until_s is not None
        out = np.zeros(n, np.float64)
        lo = max(at, round(item.at_s * RATE))
        hi = min(at + n, round(item.until_s * RATE))
        delay = round(item.delay_ms * RATE / 1000)
        for i in range(lo, hi):  # per-sample bounds keep the window edges exact
            j = i - delay
            if 0 <= j < self.length:
                out[i - at] = self.track[j] * item.gain
        return out


# -- engines and the run -----------------------------------------------------------------------


def make_engines(scenario: Scenario, truths: list[Truth]) -> Engines:
    spec = scenario.engines
    if spec.kind == "scripted":
        s = spec.scripted
        by_label = {it.label: it for it in scenario.items}
        return Engines(
            stt=ItemStt(
                [(t, by_label[t.label].transcripts) for t in truths],
                default=s.default_transcript,
                final_ms=s.stt_final_ms,
                ms_per_word=s.stt_ms_per_word,
            ),
            planner=ScriptedPlanner(
                list(s.replies),
                first_token_ms=s.llm_first_token_ms,
                tokens_per_second=s.tokens_per_second,
            ),
            tts=ScriptedTts(
                RATE,
                ms_per_char=s.tts_ms_per_char,
                first_audio_ms=s.tts_first_audio_ms,
                chunk_ms=s.tts_chunk_ms,
            ),
        )
    if spec.kind == "embedded":
        from bargein.engines.embedded import default_engines

        return default_engines(**{"now": lambda: FIXED_NOW, **spec.options})
    from bargein.engines.openai_compat import OpenAIPlanner, OpenAISTT, OpenAITTS

    o = spec.options
    common: dict[str, Any] = {"base_url": o["base_url"], "api_key": o.get("api_key")}
    return Engines(
        stt=OpenAISTT(model=o.get("stt_model", "whisper-1"), **common),
        planner=OpenAIPlanner(model=o.get("model", "gpt-4o-mini"), **common),
        tts=OpenAITTS(model=o.get("tts_model", "tts-1"), voice=o.get("voice", "alloy"), **common),
    )


async def run_scenario(scenario: Scenario, policy: PolicySpec, *, virtual: bool) -> RunResult:
    """Feed the scenario live into a session and wait until it has answered everything."""
    pcm, truths = build_input(scenario)
    engines = make_engines(scenario, truths)
    config = SessionConfig(
        vad=policy.vad,
        policy=policy.policy,
        compute="inline" if virtual else "thread",
        session_id=scenario.name,
    )
    echoes = [it for it in scenario.items if it.source == "echo"]
    speaker = Speaker()
    mic = np.zeros(len(pcm), np.int16)
    step = RATE * CHUNK_MS // 1000
    async with open_session(config, engines, speaker) as session:
        speaker.t0 = session.bus.t0
        if isinstance(engines.stt, ItemStt):
            session.bus.add_listener(engines.stt.on_event)
        speaker.start = start = trio.current_time()
        for i, at in enumerate(range(0, len(pcm), step)):
            await trio.sleep_until(start + i * CHUNK_MS / 1000)
            chunk = pcm[at : at + step].astype(np.float64)
            for item in echoes:
                chunk += speaker.echo(at, len(chunk), item)
            block = np.clip(np.round(chunk), -32768, 32767).astype(np.int16)
            mic[at : at + len(block)] = block
            session.push_audio(block)
        session.end_input()
        with trio.move_on_after(scenario.drain_s):
            await session.wait_ended()
    offset = speaker.start - speaker.t0
    return RunResult(
        scenario=scenario,
        policy=policy,
        events=speaker.events,
        truths=[
            dataclasses.replace(t, onset=t.onset + offset, offset=t.offset + offset) for t in truths
        ],
        segments=speaker.segments,
        mic=mic,
        speaker=speaker.track[: speaker.length].copy(),
        media_offset=offset,
        messages=session.messages,
        end_reason=session.end_reason or "closed",
    )


def run(scenario: Scenario, policy: PolicySpec) -> RunResult:
    """Run on the virtual clock (scripted and embedded engines) or in real time (openai)."""
    virtual = scenario.engines.kind != "openai"
    if not virtual:
        return trio.run(lambda: run_scenario(scenario, policy, virtual=False))
    _seed_scheduler()
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(lambda: run_scenario(scenario, policy, virtual=True), clock=clock)


def _seed_scheduler() -> None:
    # trio reverses each batch of runnable tasks at random (to shake out ordering bugs), which
    # would reorder events stamped at the same virtual instant. A fixed seed makes runs repeat
    # byte for byte; it does not change what the runtime may do, only which legal order it takes.
    rng = getattr(importlib.import_module("trio._core._run"), "_r", None)
    if isinstance(rng, random.Random):
        rng.seed(0)
