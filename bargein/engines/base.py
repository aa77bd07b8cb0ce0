"""What an engine must provide. Actors depend on these Protocols, never on a concrete engine.

Engines that burn CPU (recognition, synthesis) wrap that work in `bargein.runtime.compute.run_cpu`
so it runs off the event loop (real time) or is charged to the session clock (virtual time).
Engines must be cancellation-safe: a barge-in cancels any await inside them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeVar

from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import Int16Array

T_contra = TypeVar("T_contra", contravariant=True)


class Sink(Protocol[T_contra]):
    """Where an engine streams its output: a `trio.MemorySendChannel` is one, and so is the
    runtime's inline sentence splitter (which spares a task hop per token)."""

    async def send(self, value: T_contra, /) -> None: ...


@dataclass(frozen=True, slots=True)
class WordConfidence:
    """A recognized word and the recognizer's confidence in it, 0..1."""

    text: str
    confidence: float


class Hypothesis(str):
    """A transcript that carries its words' confidences. It is a `str`, so every caller that
    only wants the text has it unchanged; `words` are in the text's order and `measure` names
    what the confidence is ("pocketsphinx.posterior", "whisper.hypothesis": docs/engines.md,
    "Word confidence"), since engines' scales differ. A plain `str` from a recognizer means no
    confidence is known: its words count as confident (the scripted engines, whose words are
    the truth). `strip()` keeps the confidences (the runtime strips every transcript); other
    `str` operations return plain text.

    `scored_partials` is the engine's capability (`SttEngine.partial_confidence`), carried on
    each of its transcripts so a rule needs no engine handle: False when the engine's partials
    carry no confidence (pocketsphinx: no lattice before the utterance ends), so neither its
    partials nor a partial-decided overlap can be discounted by `words`."""

    words: tuple[WordConfidence, ...]
    measure: str
    scored_partials: bool

    def __new__(
        cls,
        text: str,
        words: tuple[WordConfidence, ...] = (),
        measure: str = "",
        scored_partials: bool = True,
    ) -> Hypothesis:
        self = super().__new__(cls, text)
        self.words = tuple(words)
        self.measure = measure
        self.scored_partials = bool(scored_partials)
        return self

    def strip(self, chars: str | None = None) -> Hypothesis:
        return Hypothesis(str.strip(self, chars), self.words, self.measure, self.scored_partials)

    def __repr__(self) -> str:
        return (
            f"Hypothesis({str(self)!r}, {self.words!r}, {self.measure!r}, "
            f"scored_partials={self.scored_partials!r})"
        )


def word_confidences(text: str) -> tuple[WordConfidence, ...] | None:
    """The words' confidences of a transcript, None when it carries none (a plain `str`, or
    an unscored `Hypothesis`: a pocketsphinx partial)."""
    return text.words if isinstance(text, Hypothesis) and text.words else None


class Recognizer(Protocol):
    """One voice session's speech recognizer: one utterance at a time, 16 kHz PCM16 in.
    Transcripts may be `Hypothesis` objects (text with word confidences)."""

    async def start_utterance(self) -> None: ...

    async def feed(self, pcm: Int16Array) -> str | None:
        """Feed audio of the current utterance; return the partial hypothesis if it changed."""
        ...

    async def end_utterance(self) -> str:
        """Close the utterance and return its final transcript ('' if nothing was recognised)."""
        ...

    async def aclose(self) -> None: ...


class SttEngine(Protocol):
    """An engine may also declare ``partial_confidence: bool`` (whether its partials carry
    word confidences; `Hypothesis.scored_partials` carries it on each transcript). Not part of
    the Protocol: an engine without it returns plain text or scored partials."""

    name: str

    def recognizer(self) -> Recognizer: ...


@dataclass(frozen=True, slots=True)
class PlanRequest:
    turn: int
    # The heard history, ending with the user's message that opened this turn.
    messages: tuple[ChatMessage, ...]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the reply as the model streams it (a token or a few)."""

    text: str


@dataclass(frozen=True, slots=True)
class Status:
    """Progress that is not reply text, e.g. a tool running ("Looking that up…")."""

    kind: str  # "tool_started" | "tool_finished" | "info"
    text: str
    tool: str | None = None


PlanOutput = TextDelta | Status


class PlannerEngine(Protocol):
    name: str

    async def respond(self, request: PlanRequest, out: Sink[PlanOutput]) -> None:
        """Stream the reply into `out` and return when it is complete."""
        ...


@dataclass(frozen=True, slots=True)
class WordStart:
    """A word of synthesized speech and the sample (engine rate) where it starts in the sentence."""

    text: str
    sample: int


@dataclass(frozen=True, slots=True)
class TtsChunk:
    """Synthesized audio in order; `words` start at sample offsets from the sentence start."""

    pcm: Int16Array
    words: tuple[WordStart, ...] = ()


class TtsEngine(Protocol):
    name: str
    sample_rate: int

    async def synthesize(self, text: str, out: Sink[TtsChunk]) -> None:
        """Stream one sentence's audio into `out` as it is produced."""
        ...


@dataclass(frozen=True, slots=True)
class Engines:
    stt: SttEngine
    planner: PlannerEngine
    tts: TtsEngine
