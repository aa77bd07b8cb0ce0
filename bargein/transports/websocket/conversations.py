"""Conversations a client may resume: pure bookkeeping (no I/O, no trio).

Each conversation has a session id and a resume secret, both issued in `session.started`.
Resuming needs both; the secret is compared in constant time. A conversation is *owned* by the
connection serving it; a newer connection presenting the right secret takes it over (the server
ends the owner first). Once no connection owns it, the conversation keeps what a resumed session
continues from: the heard history and the next turn and event sequence numbers. The newest
`remembered` unowned conversations are kept; older ones are forgotten.

The shared `Store` (bargein/store) holds the same records for the other workers: a
conversation's record is written when it starts, at every turn end (`TurnRecorder`) and when
its connection lets go, so a worker that never saw it, or whose predecessor died mid-turn,
resumes it with the heard history of every turn that ended (`find_or_load`).
"""

from __future__ import annotations

import hmac
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bargein.runtime.events import Event, EventType
from bargein.runtime.history import ChatMessage
from bargein.store import ConversationRecord, Store, StoreUnavailable
from bargein.transports.protocol import (
    MAX_SERVER_TEXT_CHARS,
    ErrorCode,
    HistoryEntry,
    history_within,
    scalar_text,
)


def new_session_id() -> str:
    return secrets.token_urlsafe(9)


def new_resume_secret() -> str:
    return secrets.token_urlsafe(32)  # 43 url-safe characters, 256 bits


@dataclass(slots=True, eq=False)
class Conversation:
    session_id: str
    secret: str
    history: tuple[ChatMessage, ...] = ()
    next_turn: int = 1
    next_seq: int = 0
    owner: object | None = None  # the connection serving it now


class ResumeRefused(Exception):
    """`session.start` named a conversation it may not resume (`unknown_session` or
    `bad_resume_secret`); the connection gets a new conversation instead."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class Conversations:
    def __init__(
        self,
        remembered: int = 256,
        *,
        new_id: Callable[[], str] = new_session_id,
        new_secret: Callable[[], str] = new_resume_secret,
    ) -> None:
        if remembered < 0:
            raise ValueError("remembered must be >= 0")
        self._remembered = remembered
        self._new_id = new_id
        self._new_secret = new_secret
        self._all: OrderedDict[str, Conversation] = OrderedDict()

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._all

    def new(self, owner: object) -> Conversation:
        """A fresh conversation, owned by `owner`."""
        session_id = self._new_id()
        while session_id in self._all:  # 72 random bits: practically never
            session_id = self._new_id()
        conversation = Conversation(session_id, self._new_secret(), owner=owner)
        self._all[session_id] = conversation
        return conversation

    def find(self, session_id: str, secret: str | None) -> Conversation:
        """The conversation `session_id` if `secret` is its resume secret (owned or not)."""
        conversation = self._all.get(session_id)
        if conversation is None:
            raise ResumeRefused(
                ErrorCode.UNKNOWN_SESSION, f"no conversation {session_id} to resume"
            )
        if secret is None or not hmac.compare_digest(
            secret.encode("ascii", "replace"), conversation.secret.encode("ascii")
        ):
            raise ResumeRefused(
                ErrorCode.BAD_RESUME_SECRET, f"wrong or missing 'resume_secret' for {session_id}"
            )
        return conversation

    def adopt(self, record: ConversationRecord) -> Conversation:
        """The conversation of a record from the shared store (another worker's), unowned;
        one this worker holds already is kept as it is."""
        conversation = self._all.get(record.session_id)
        if conversation is None:
            conversation = Conversation(
                record.session_id, record.secret, record.history, record.next_turn,
                record.next_seq,
            )  # fmt: skip
            self._all[record.session_id] = conversation
            self._forget_old()
        return conversation

    def claim(self, conversation: Conversation, owner: object) -> None:
        """`owner` serves `conversation` from now on (any earlier owner was ended)."""
        conversation.owner = owner
        self._all[conversation.session_id] = conversation
        self._all.move_to_end(conversation.session_id)

    def release(
        self,
        conversation: Conversation,
        owner: object,
        *,
        history: tuple[ChatMessage, ...],
        next_turn: int,
        next_seq: int,
    ) -> bool:
        """`owner` is done with `conversation`: keep where it got to. False (and nothing kept)
        if `owner` no longer owns it, i.e. a takeover did not wait for it to end."""
        if conversation.owner is not owner:
            return False
        conversation.owner = None
        conversation.history = tuple(m for m in history if m.role != "system")
        conversation.next_turn = max(conversation.next_turn, next_turn)
        conversation.next_seq = max(conversation.next_seq, next_seq)
        self._all.move_to_end(conversation.session_id)
        self._forget_old()
        return True

    def _forget_old(self) -> None:
        unowned = [c for c in self._all.values() if c.owner is None]
        for conversation in unowned[: max(0, len(unowned) - self._remembered)]:
            del self._all[conversation.session_id]


def record_of(conversation: Conversation) -> ConversationRecord:
    return ConversationRecord(
        conversation.session_id,
        conversation.secret,
        conversation.history,
        conversation.next_turn,
        conversation.next_seq,
    )


async def find_or_load(
    conversations: Conversations, store: Store, session_id: str, secret: str | None
) -> Conversation:
    """`Conversations.find`, and for a conversation this worker does not have, the shared
    store's record of it. Raises `ResumeRefused` (a store that does not answer: the
    conversation is as unknown as one it does not have, and the message says why)."""
    try:
        local = conversations.find(session_id, secret)
    except ResumeRefused as refused:
        if refused.code is not ErrorCode.UNKNOWN_SESSION:
            raise
        unknown = refused
    else:
        if local.owner is None:  # another worker may have continued it since it was here
            try:
                newer = await store.load_conversation(session_id)
            except StoreUnavailable:
                newer = None  # what this worker has is the best there is
            if newer is not None and newer.next_seq > local.next_seq:
                local.history, local.next_turn = newer.history, newer.next_turn
                local.next_seq = newer.next_seq
        return local
    try:
        record = await store.load_conversation(session_id)
    except StoreUnavailable as exc:
        raise ResumeRefused(
            ErrorCode.UNKNOWN_SESSION, f"{unknown.message} (the conversation store: {exc})"
        ) from exc
    if record is None:
        raise unknown
    conversations.adopt(record)
    return conversations.find(session_id, secret)


class _WithMessages(Protocol):
    @property
    def messages(self) -> tuple[ChatMessage, ...]: ...


class TurnRecorder:
    """A session bus listener that keeps the shared store's record of the conversation current:
    at every turn end the heard history so far, and at every turn start the turn number, so a
    worker resuming after this one died loses at most the turn in flight and never reuses its
    number."""

    def __init__(self, store: Store, conversation: Conversation, session: _WithMessages) -> None:
        self.store = store
        self.conversation = conversation
        self.session = session
        self.history = conversation.history
        self.next_turn = conversation.next_turn

    def __call__(self, event: Event) -> None:
        if event.type is EventType.TURN_STARTED:
            pass
        elif event.type in (EventType.TURN_COMPLETED, EventType.TURN_CANCELLED):
            self.history = tuple(m for m in self.session.messages if m.role != "system")
        else:
            return
        self.next_turn = max(self.next_turn, (event.turn or 0) + 1)
        c = self.conversation
        self.store.save_conversation(
            ConversationRecord(
                c.session_id, c.secret, self.history, self.next_turn,
                max(c.next_seq, event.seq + 1),
            )
        )  # fmt: skip


def heard_history(messages: tuple[ChatMessage, ...]) -> tuple[HistoryEntry, ...]:
    """The heard history as `session.started` carries it: newest first to fit one frame."""
    return history_within(
        tuple(
            HistoryEntry(
                "user" if m.role == "user" else "assistant",
                scalar_text(m.content[:MAX_SERVER_TEXT_CHARS]),
                m.interrupted,
            )
            for m in messages
            if m.role != "system"
        )
    )
