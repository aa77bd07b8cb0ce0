"""The trio side of the harness: run one scenario through a real session — the scenario's audio
is the microphone, a `Speaker` transport is the loudspeaker (and feeds echo back) — and collect
the event stream. Everything else (metrics, plots, tables) is pure and lives elsewhere."""

from __future__ import annotations

import functools
import importlib
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import trio
import trio.testing

from bargein.dsp.echo_mix import room_response
from bargein.engines.base import Engines, Recognizer
from bargein.research.audio import RATE, Truth, build_input
from bargein.research.policies import PolicySpec
from bargein.research.scenario import AudioItem, Scenario, ScriptedEngineSpec
from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import Int16Array, OutFrame
from bargein.session import SessionConfig, open_session
from bargein.testing.scripted import ScriptedPlanner, ScriptedTts

CHUNK_MS = 20
# Which words a VAD utterance hears: its onset may lead the labelled truth by the VAD's onset
# window (pre-roll), and its offset trail the last word a little.
_MATCH_EARLY_S = 0.35
_MATCH_LATE_S = 0.1
# Contiguous frames of a turn whose stamps differ by less than this are one heard segment (real
# time runs stamp each 20 ms frame with a little jitter).
_SEGMENT_JOIN_S = 0.010
# Embedded planner answers "what time is it" from this clock, so runs repeat exactly.
FIXED_NOW = datetime(2024, 1, 1, 12, 0, 0)


@dataclass
class RunResult:
    scenario: Scenario
    policy: PolicySpec
    events: list[Event]
    truths: list[Truth]  # on the session clock
    segments: list[tuple[float, float, int]]  # assistant audio heard: start, end, turn
    heard_words: list[tuple[float, int, str]]  # assistant words heard whole: start, turn, text
    mic: Int16Array  # what the session heard (scenario audio + echo)
    speaker: Int16Array  # assistant audio on the same timeline
    media_offset: float  # session time of input sample 0
    messages: tuple[ChatMessage, ...]
    end_reason: str
    seed: int | None  # the scheduler seed (None: real time, not reproducible)


# -- scripted STT that hears the scenario's own words -----------------------------------------


class ItemStt:
    """Scripted recognition on the scenario's word timing (`Truth.words`, input-timeline
    seconds). An utterance hears every not-yet-heard word whose midpoint lies in
    [VAD onset - 0.35 s, VAD offset + 0.1 s]: two items merged into one VAD utterance give both
    their words. A partial reveals each such word once audio up to its end (+ `partial_ms`)
    has been captured; the final comes `final_ms` after the VAD ends the utterance, or
    `default` when the utterance held no words. The VAD's onset and offset come from the bus."""

    name = "scripted-items"

    def __init__(
        self,
        truths: list[Truth],
        *,
        default: str,
        final_ms: float,
        partials: bool = True,
        partial_ms: float = 0.0,
    ) -> None:
        self.words = sorted(w for t in truths for w in t.words)
        self.heard = [False] * len(self.words)
        self.default = default
        self.final_ms = final_ms
        self.partials = partials
        self.partial_ms = partial_ms
        self.onset: float | None = None
        self.offset: float | None = None
        self.media_start = 0.0  # trio time of input sample 0 (set by the harness)

    def on_event(self, event: Event) -> None:
        if event.type == EventType.SPEECH_STARTED:
            self.onset = float(event.data["onset"])  # media time of the input
        elif event.type == EventType.SPEECH_STOPPED:
            self.offset = float(event.data["offset"])

    def media_now(self) -> float:
        """Input seconds captured so far (audio is delivered once captured)."""
        return trio.current_time() - self.media_start

    def candidates(self, start: float, end: float) -> list[int]:
        return [
            i
            for i, (a, b, _) in enumerate(self.words)
            if not self.heard[i] and start - _MATCH_EARLY_S <= (a + b) / 2 <= end + _MATCH_LATE_S
        ]

    def recognizer(self) -> Recognizer:
        return _ItemRecognizer(self)


class _ItemRecognizer:
    def __init__(self, engine: ItemStt) -> None:
        self._engine = engine
        self._start = 0.0
        self._partial = ""

    async def start_utterance(self) -> None:
        self._start = self._engine.onset if self._engine.onset is not None else 0.0
        self._partial = ""
        await trio.lowlevel.checkpoint()

    async def feed(self, pcm: Int16Array) -> str | None:
        await trio.lowlevel.checkpoint()
        e = self._engine
        if not e.partials:
            return None
        now = e.media_now()
        lag = e.partial_ms / 1000
        due = [i for i in e.candidates(self._start, now) if e.words[i][1] + lag <= now]
        text = " ".join(e.words[i][2] for i in due)
        if text == self._partial:
            return None
        self._partial = text
        return text

    async def end_utterance(self) -> str:
        e = self._engine
        end = e.offset if e.offset is not None and e.offset >= self._start else e.media_now()
        await trio.sleep(e.final_ms / 1000)
        chosen = e.candidates(self._start, end)
        for i in chosen:
            e.heard[i] = True
        return " ".join(e.words[i][2] for i in chosen) or e.default

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
    words: list[tuple[float, int, str]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    length: int = 0
    live_turns: set[int] = field(default_factory=set)
    user_speaking: bool = False  # an utterance has begun and its final has not come

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
        for w in frame.words:  # a word rides the frame that ends it: it was heard whole
            self.words.append((t + (w.start - frame.start) / RATE, frame.turn, w.text))
        last = self.segments[-1] if self.segments else None
        if last is not None and last[2] == frame.turn and abs(last[1] - t) < _SEGMENT_JOIN_S:
            self.segments[-1] = (last[0], seg_end, frame.turn)
        else:
            self.segments.append((t, seg_end, frame.turn))
        await trio.lowlevel.checkpoint()

    async def send_clear(self, turn: int) -> None:
        await trio.lowlevel.checkpoint()  # sent is played: nothing is buffered to flush

    async def send_event(self, event: Event) -> None:
        self.events.append(event)
        if event.type == EventType.TURN_STARTED and event.turn is not None:
            self.live_turns.add(event.turn)
        elif event.type in (EventType.TURN_COMPLETED, EventType.TURN_CANCELLED):
            self.live_turns.discard(event.turn or 0)
        elif event.type in (EventType.SPEECH_STARTED, EventType.TRANSCRIPT_FINAL):
            self.user_speaking = event.type == EventType.SPEECH_STARTED
        await trio.lowlevel.checkpoint()

    def echo(self, at: int, n: int, item: AudioItem) -> np.ndarray:
        """The echo item's contribution to input samples [at, at + n): what was sent
        `delay_ms` earlier, through the item's room response (none: a single tap), times
        `gain`; zero outside [at_s, until_s)."""
        assert item.until_s is not None
        out = np.zeros(n, np.float64)
        lo = max(at, round(item.at_s * RATE))
        hi = min(at + n, round(item.until_s * RATE))
        if lo >= hi:
            return out
        h = _room(item.room_rt60_ms, item.seed)
        delay = round(item.delay_ms * RATE / 1000)
        # Input sample i hears track[i - delay - k] * h[k]; zeros outside what was sent.
        src_lo, src_hi = lo - delay - (len(h) - 1), hi - delay
        src = np.zeros(src_hi - src_lo, np.float64)
        a, b = max(src_lo, 0), min(src_hi, self.length)
        if a < b:
            src[a - src_lo : b - src_lo] = self.track[a:b]
        out[lo - at : hi - at] = np.convolve(src, h, mode="valid") * item.gain
        return out


@functools.lru_cache(maxsize=32)
def _room(rt60_ms: float, seed: int) -> np.ndarray:
    """Loudspeaker-to-microphone response with unit energy: direct path, early reflections and
    an exponentially decaying tail (`rt60_ms` long, at most 500 ms); [1.0] for no room."""
    if rt60_ms <= 0:
        return np.ones(1, np.float64)
    return room_response(
        RATE, delay_ms=0.0, rt60_ms=rt60_ms, length_ms=min(rt60_ms, 500.0), gain_db=0.0, seed=seed
    )


# -- engines and the run -----------------------------------------------------------------------


def make_engines(scenario: Scenario, truths: list[Truth]) -> Engines:
    spec = scenario.engines
    if spec.kind == "scripted":
        s = spec.scripted
        return Engines(
            stt=ItemStt(
                truths,
                default=s.default_transcript,
                final_ms=s.stt_final_ms,
                partials=s.stt_partials,
                partial_ms=s.stt_partial_ms,
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
    if spec.kind == "neural":  # models loaded before the clock runs: no load charged to a turn
        from bargein.engines.neural import engines_for

        return engines_for("neural", wait=True)(**{"now": lambda: FIXED_NOW, **spec.options})
    from bargein.engines.openai_compat import OpenAIPlanner, OpenAISTT, OpenAITTS

    o = spec.options
    common: dict[str, Any] = {"base_url": o["base_url"], "api_key": o.get("api_key")}
    stt: Any = OpenAISTT(model=o.get("stt_model", "whisper-1"), **common)
    if o.get("stt") == "scripted":  # honour the scenario's transcripts, time the services
        stt = ItemStt(truths, default="", final_ms=ScriptedEngineSpec().stt_final_ms)
    return Engines(
        stt=stt,
        planner=OpenAIPlanner(model=o.get("model", "gpt-4o-mini"), **common),
        tts=OpenAITTS(model=o.get("tts_model", "tts-1"), voice=o.get("voice", "alloy"), **common),
    )


async def run_scenario(
    scenario: Scenario, policy: PolicySpec, *, virtual: bool, seed: int | None = None
) -> RunResult:
    """Feed the scenario live into a session and wait until it has answered everything."""
    pcm, truths = build_input(scenario)
    engines = make_engines(scenario, truths)
    config = SessionConfig(
        vad=policy.vad,
        policy=policy.for_session(),
        compute="inline" if virtual else "thread",
        session_id=scenario.name,
        **policy.session,
    )
    echoes = [it for it in scenario.items if it.source == "echo"]
    speaker = Speaker()
    step = RATE * CHUNK_MS // 1000
    blocks: list[Int16Array] = []
    async with open_session(config, engines, speaker) as session:
        speaker.t0 = session.bus.t0
        if isinstance(engines.stt, ItemStt):
            session.bus.add_listener(engines.stt.on_event)
        speaker.start = start = trio.current_time()
        if isinstance(engines.stt, ItemStt):
            engines.stt.media_start = start
        at = 0
        # The timeline, then silence while the assistant still has a turn or the VAD is inside
        # an utterance (up to drain_s): a live microphone stays open while the reply plays, so
        # ending the input never cuts an utterance or a decision short.
        while at < len(pcm) or (
            (speaker.live_turns or speaker.user_speaking)
            and at < len(pcm) + scenario.drain_s * RATE
        ):
            chunk = pcm[at : at + step].astype(np.float64)
            if len(chunk) < step and at >= len(pcm):
                chunk = np.zeros(step, np.float64)
            # A microphone delivers a chunk once it has been captured, at its end.
            await trio.sleep_until(start + (at + len(chunk)) / RATE)
            for item in echoes:
                chunk += speaker.echo(at, len(chunk), item)
            block = np.clip(np.round(chunk), -32768, 32767).astype(np.int16)
            blocks.append(block)
            session.push_audio(block)
            at += len(block)
        session.end_input()
        with trio.move_on_after(scenario.drain_s):
            await session.wait_ended()
    offset = speaker.start - speaker.t0
    return RunResult(
        scenario=scenario,
        policy=policy,
        events=speaker.events,
        truths=[t.shifted(offset) for t in truths],
        segments=speaker.segments,
        heard_words=speaker.words,
        mic=np.concatenate(blocks) if blocks else np.zeros(0, np.int16),
        speaker=speaker.track[: speaker.length].copy(),
        media_offset=offset,
        messages=session.messages,
        end_reason=session.end_reason or "closed",
        seed=seed,
    )


def run(scenario: Scenario, policy: PolicySpec, *, seed: int = 0) -> RunResult:
    """Run on the virtual clock (scripted and embedded engines) with the scheduler seeded by
    `seed`, or in real time (openai; not reproducible, `seed` unused)."""
    virtual = scenario.engines.kind != "openai"
    if not virtual:
        return trio.run(lambda: run_scenario(scenario, policy, virtual=False))
    seed_scheduler(seed)
    clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(lambda: run_scenario(scenario, policy, virtual=True, seed=seed), clock=clock)


class SchedulerSeedError(RuntimeError):
    """trio no longer has the scheduler RNG the harness seeds: runs would not repeat."""


def seed_scheduler(seed: int) -> None:
    """trio reverses each batch of runnable tasks at random (to shake out ordering bugs), which
    would reorder events stamped at the same virtual instant. Seeding that RNG makes runs repeat
    byte for byte; it does not change what the runtime may do, only which legal order it takes.
    trio offers no public hook, so this reaches `trio._core._run._r` — and fails loudly if a
    trio release moves it, rather than silently giving runs that do not repeat."""
    rng = getattr(importlib.import_module("trio._core._run"), "_r", None)
    if not isinstance(rng, random.Random):
        raise SchedulerSeedError(
            f"trio {trio.__version__} has no trio._core._run._r random.Random: the research "
            "harness cannot make runs reproducible; pin trio to a release that has it or "
            "update bargein.research.harness.seed_scheduler"
        )
    rng.seed(seed)
