"""Cut a token stream into speakable pieces as early as it is safe to.

TTS wants whole sentences (prosody), but waiting for a sentence end that a slow model never
reaches leaves the user in silence (pipecat #5842). So a long clause is cut at a comma, and
the planner loop flushes whatever is pending when the model goes quiet (see `turn.py`).
"""

from __future__ import annotations

import re

_END = re.compile(r"[.!?;:…]+[\"')\]]*(?=\s)|\n+")
_CLAUSE = re.compile(r"[,—–]\s")
_ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st vs etc e.g i.e no fig approx dept inc ltd co".split()
)


class SentenceSplitter:
    """Pure: `feed` text deltas, get complete pieces; `flush` at the end of the stream."""

    def __init__(self, clause_words: int = 12, max_words: int = 30) -> None:
        self._buf = ""
        self._clause_words = clause_words
        self._max_words = max_words

    @property
    def pending(self) -> str:
        return self._buf

    def feed(self, delta: str) -> list[str]:
        self._buf += delta
        out: list[str] = []
        while True:
            piece = self._take()
            if piece is None:
                return out
            out.append(piece)

    def unread(self, text: str) -> None:
        """Put text taken out (but not delivered) back at the front of the buffer."""
        self._buf = f"{text} {self._buf.lstrip()}" if self._buf.strip() else text

    def flush(self) -> str | None:
        piece, self._buf = self._buf.strip(), ""
        return piece or None

    def _take(self) -> str | None:
        for m in _END.finditer(self._buf):
            head = self._buf[: m.end()]
            if _is_abbreviation(head):
                continue
            return self._cut(m.end())
        words = self._buf.split()
        if len(words) >= self._clause_words:
            clause = _CLAUSE.search(self._buf)
            if clause is not None:
                return self._cut(clause.start() + 1)
        if len(words) > self._max_words:
            return self._cut(self._buf.rindex(words[-1]))
        return None

    def _cut(self, at: int) -> str | None:
        piece, self._buf = self._buf[:at].strip(), self._buf[at:].lstrip()
        return piece or self._take()


def _is_abbreviation(head: str) -> bool:
    if not head.endswith("."):
        return False
    last = head[:-1].rsplit(None, 1)[-1] if head[:-1].strip() else ""
    initial = len(last) == 1 and last.isupper() and last != "I"
    return initial or last.lower() in _ABBREVIATIONS
