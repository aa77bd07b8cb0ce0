"""The conversation as the user experienced it: what they said and what they actually heard."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: Role
    content: str
    # Set on assistant messages cut short by a barge-in: `content` is only the heard part.
    interrupted: bool = False


class History:
    """Committed messages, appended. Only the floor's turn runner commits to it.

    `keep_chars` bounds what a long session keeps: the newest messages whose contents fit
    (as `window` picks them; the newest one always stays, and the system prompt). Any window
    of a budget up to `keep_chars` is what an unbounded history would give. None: everything."""

    def __init__(
        self,
        system_prompt: str | None = None,
        earlier: Iterable[ChatMessage] = (),
        *,
        keep_chars: int | None = None,
    ) -> None:
        self._messages: list[ChatMessage] = []
        if system_prompt:
            self._messages.append(ChatMessage("system", system_prompt))
        self._first = len(self._messages)  # index of the oldest message after the system's
        self._keep_chars = keep_chars
        self._chars = 0  # content characters after the system prompt
        for m in earlier:
            if m.role != "system":
                self._add(m)

    def add_user(self, text: str) -> None:
        self._add(ChatMessage("user", text))

    def add_assistant(self, text: str, *, interrupted: bool) -> None:
        if text or interrupted:
            self._add(ChatMessage("assistant", text, interrupted))

    def _add(self, message: ChatMessage) -> None:
        self._messages.append(message)
        self._chars += len(message.content)
        keep = self._keep_chars
        if keep is None:
            return
        while self._chars > keep and len(self._messages) - self._first > 1:
            self._chars -= len(self._messages.pop(self._first).content)

    def messages(self) -> tuple[ChatMessage, ...]:
        return tuple(self._messages)

    def window(self, budget_chars: int | None) -> tuple[ChatMessage, ...]:
        """What a planner request carries: the system prompt, then the newest messages whose
        contents fit in `budget_chars` (oldest dropped first); the newest message always goes,
        so the model sees what it answers. None: everything."""
        if budget_chars is None:
            return self.messages()
        system = [m for m in self._messages if m.role == "system"]
        rest = [m for m in self._messages if m.role != "system"]
        return tuple(system + newest_within(rest, budget_chars))


def newest_within(messages: Sequence[ChatMessage], budget_chars: int) -> list[ChatMessage]:
    """The newest `messages` whose contents fit in `budget_chars`, in order (the oldest are
    dropped first); the newest one always goes, so the model sees what it answers."""
    kept: list[ChatMessage] = []
    used = 0
    for m in reversed(messages):
        if kept and used + len(m.content) > budget_chars:
            break
        kept.append(m)
        used += len(m.content)
    return kept[::-1]
