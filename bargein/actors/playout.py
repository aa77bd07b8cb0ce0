"""The playout cursor of one assistant turn: what was generated, sent and played, in words."""

from __future__ import annotations

from dataclasses import dataclass, field

from bargein.actors.policy import HistoryCommit
from bargein.runtime.messages import WordMark


@dataclass(slots=True)
class PlayoutCursor:
    """Pure bookkeeping; egress advances it, the turn runner reads the outcome from it."""

    turn: int
    rate: int
    words: list[WordMark] = field(default_factory=list)
    sent: int = 0
    played: int | None = None  # set once the peer reports playback
    frames_sent: int = 0
    frames_dropped: int = 0
    generated: list[str] = field(default_factory=list)  # the planner's text deltas, in order
    tokens: int = 0
    synthesized: int = 0  # output samples TTS produced for the turn, sent or not
    failure: str | None = None  # "error" | "deadline": the planner failed; the turn is not complete

    def on_sent(self, end: int, words: tuple[WordMark, ...]) -> None:
        self.sent = max(self.sent, end)
        self.words.extend(words)
        self.frames_sent += 1

    def on_played(self, samples: int) -> None:
        # Playback reports can arrive late or out of order; never move backwards or past `sent`.
        self.played = min(self.sent, max(self.played or 0, samples))

    @property
    def generated_text(self) -> str:
        return "".join(self.generated).strip()

    @property
    def heard_samples(self) -> int:
        """Played if the peer reports playback, else sent: never more than the user could hear."""
        return self.sent if self.played is None else self.played

    @property
    def heard_ms(self) -> float:
        return 1000 * self.heard_samples / self.rate

    @property
    def sent_ms(self) -> float:
        return 1000 * self.sent / self.rate

    @property
    def synthesized_ms(self) -> float:
        return 1000 * self.synthesized / self.rate

    def heard_words(self) -> list[WordMark]:
        limit = self.heard_samples
        return [w for w in self.words if w.end <= limit]

    def heard_text(self) -> str:
        return " ".join(w.text for w in self.heard_words())

    def committed_text(self, mode: HistoryCommit) -> str:
        """The assistant text that enters the history under `mode` (research compares them).

        Whether the turn completed or was cut, the history holds what was heard — the heard
        words, or only the wholly heard sentences — so it is the same text as `heard_text`
        (`heard_sentences` aside); `generated` (for comparison only) is everything generated.
        """
        if mode == "generated":
            return self.generated_text
        heard = self.heard_words()
        if mode == "heard_words":
            return " ".join(w.text for w in heard)
        whole = {w.sentence for w in heard if w.ends_sentence}
        return " ".join(w.text for w in heard if w.sentence in whole)
