"""How the floor treats user speech that overlaps the assistant: configuration, no logic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

BACKCHANNELS = frozenset(
    "mm mhm mmhmm hmm hm uh huh uhhuh um yeah yep yup ok okay right sure oh ah aha i see".split()
)

HistoryCommit = Literal["heard_words", "heard_sentences", "generated"]


@dataclass(frozen=True, slots=True)
class InterruptionPolicy:
    """`onset`: cancel the turn as soon as the VAD hears the user.

    `confirm`: pause output at once, cancel only when the interruption is confirmed — speech has
    lasted `min_speech_ms` and the transcript holds `min_words` words outside the backchannel
    lexicon, or the utterance ended with such words. Otherwise it was a false interruption: the
    paused audio resumes when the utterance proves to be a backchannel or noise, or when no
    transcript arrives within `resume_timeout_ms` of the speech stopping.

    `echo_guard_ms` ignores onsets that start within that long after assistant audio (re)starts,
    where a speakerphone's echo of our own voice would appear.
    """

    mode: Literal["onset", "confirm"] = "confirm"
    min_speech_ms: int = 400
    min_words: int = 0
    backchannels: frozenset[str] = field(default=BACKCHANNELS)
    resume_timeout_ms: int = 1500
    echo_guard_ms: int = 0
    history_commit: HistoryCommit = "heard_words"

    def __post_init__(self) -> None:
        if self.mode not in ("onset", "confirm"):
            raise ValueError(f"unknown interruption mode {self.mode!r}")
        if self.history_commit not in ("heard_words", "heard_sentences", "generated"):
            raise ValueError(f"unknown history_commit {self.history_commit!r}")

    def content_words(self, text: str) -> int:
        """Words that count towards an interruption (backchannels and fillers do not)."""
        words = [w.strip(".,!?;:'\"").replace("-", "") for w in text.lower().split()]
        return sum(1 for w in words if w and w not in self.backchannels)
