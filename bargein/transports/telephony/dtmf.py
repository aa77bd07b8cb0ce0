"""Key presses -> typed user input (pure: the caller passes the time).

Decision (docs/telephony.md): each press is a `status` event at once (`text` "dtmf 5") for
monitors; the digits of one entry become ONE typed user message "[dtmf 123]" that the planner
sees in the history like any user text. An entry ends with `#` (not included), or when no key
came for `gap_s` seconds, or at `max_digits`. A `#` alone gives "[dtmf #]".
"""

from __future__ import annotations

from typing import Final

DTMF_GAP_S: Final = 1.5
MAX_DIGITS: Final = 32


def dtmf_text(digits: str) -> str:
    return f"[dtmf {digits}]"


class DtmfCollector:
    def __init__(self, gap_s: float = DTMF_GAP_S, max_digits: int = MAX_DIGITS) -> None:
        self.gap_s = gap_s
        self.max_digits = max_digits
        self._digits = ""
        self._last = 0.0

    def press(self, digit: str, now: float) -> str | None:
        """A key at `now`; returns a finished entry's digits, if this key finished one."""
        if digit == "#":
            entry, self._digits = self._digits or "#", ""
            return entry
        self._digits += digit
        self._last = now
        if len(self._digits) >= self.max_digits:
            entry, self._digits = self._digits, ""
            return entry
        return None

    def due(self) -> float | None:
        """When the entry being typed times out (None: nothing typed)."""
        return self._last + self.gap_s if self._digits else None

    def expire(self, now: float) -> str | None:
        due = self.due()
        if due is None or now < due:
            return None
        entry, self._digits = self._digits, ""
        return entry
