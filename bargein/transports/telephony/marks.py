"""Heard truth from the carrier's mark echoes (pure bookkeeping, no I/O, no clock).

We send a `mark` after each media message that carries the end of a word. The carrier echoes a
mark when all the audio queued before it has played - and ALSO when a `clear` drops it, right
away. So an echo alone does not mean "heard": every mark still pending when we send `clear` is
moved aside, and its echo (which the carrier sends at once) is counted as dropped. Only echoes
of marks that were pending and not cleared advance the turn's played-sample cursor.

Conservative on purpose: a mark whose audio played just before the carrier got our `clear`, but
whose echo crossed our `clear` on the wire, is counted as dropped. The history may then lose
the word at the cut; it never gains a word the caller did not hear.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Final

MAX_PENDING: Final = 4096


@dataclass(frozen=True, slots=True)
class Played:
    """The caller has heard `turn` up to output sample `samples`."""

    turn: int
    samples: int


@dataclass(frozen=True, slots=True)
class Dropped:
    """The echo of a mark our `clear` dropped: that audio was not heard."""

    turn: int
    samples: int


@dataclass(frozen=True, slots=True)
class Unknown:
    """An echo of a name we never sent (or already saw): counted, otherwise ignored."""

    name: str


Echo = Played | Dropped | Unknown


@dataclass(slots=True)
class MarkStats:
    placed: int = 0
    played: int = 0
    dropped: int = 0
    unknown: int = 0
    forgotten: int = 0  # pending marks given up on (the carrier never echoed them)
    clears: int = 0


class MarkTracker:
    def __init__(self, max_pending: int = MAX_PENDING) -> None:
        self.max_pending = max_pending
        self.stats = MarkStats()
        self._serial = 0
        self._pending: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._cleared: OrderedDict[str, tuple[int, int]] = OrderedDict()
        self._played: dict[int, int] = {}
        # When we sent our last `clear` (the caller's clock; None: never).
        self.cleared_at: float | None = None

    def place(self, turn: int, samples: int) -> str:
        """A new mark after output sample `samples` of `turn`; returns the name to send."""
        self._serial += 1
        name = f"b{self._serial}.t{turn}.s{samples}"
        self._pending[name] = (turn, samples)
        self.stats.placed += 1
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)
            self.stats.forgotten += 1
        return name

    def clear(self, at: float) -> int:
        """We sent `clear` at `at`: every mark pending now will come back as dropped."""
        self.cleared_at = at
        self.stats.clears += 1
        moved = len(self._pending)
        self._cleared.update(self._pending)
        self._pending.clear()
        while len(self._cleared) > self.max_pending:
            self._cleared.popitem(last=False)
            self.stats.forgotten += 1
        return moved

    def echoed(self, name: str) -> Echo:
        if (spot := self._pending.pop(name, None)) is not None:
            turn, samples = spot
            self.stats.played += 1
            self._played[turn] = max(self._played.get(turn, 0), samples)
            return Played(turn, samples)
        if (spot := self._cleared.pop(name, None)) is not None:
            self.stats.dropped += 1
            return Dropped(*spot)
        self.stats.unknown += 1
        return Unknown(name)

    def played(self, turn: int) -> int:
        """The furthest sample of `turn` the caller is known to have heard."""
        return self._played.get(turn, 0)

    @property
    def pending(self) -> int:
        return len(self._pending)
