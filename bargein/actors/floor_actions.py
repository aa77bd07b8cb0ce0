"""What the floor decides: its states and the actions `FloorMachine` returns (pure data)."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class FloorState(enum.StrEnum):
    LISTENING = "listening"
    USER_SPEAKING = "user_speaking"
    THINKING = "thinking"
    SPEAKING = "speaking"
    PAUSED = "paused"
    DUCKED = "ducked"  # the reply plays on, turned down, while an overlap is judged
    INTERRUPTED = "interrupted"


@dataclass(frozen=True, slots=True)
class StartTurn:
    turn: int
    user_text: str


@dataclass(frozen=True, slots=True)
class CancelTurn:
    turn: int
    reason: str  # "barge_in" | "client" | "text_input"
    onset: float | None = None  # session time the interrupting speech began


@dataclass(frozen=True, slots=True)
class PauseOutput:
    turn: int
    onset: float


@dataclass(frozen=True, slots=True)
class ResumeOutput:
    turn: int
    text: str  # what the false interruption turned out to be ('' if nothing was recognised)
    paused_at: float


@dataclass(frozen=True, slots=True)
class DuckOutput:
    turn: int
    onset: float


@dataclass(frozen=True, slots=True)
class RestoreOutput:
    turn: int
    text: str  # what the false interruption turned out to be ('' if nothing was recognised)
    ducked_at: float
    announce: bool = True  # also report the false interruption (False: a ResumeOutput does)


@dataclass(frozen=True, slots=True)
class EndSession:
    reason: str


Action = (
    StartTurn | CancelTurn | PauseOutput | ResumeOutput | DuckOutput | RestoreOutput | EndSession
)
