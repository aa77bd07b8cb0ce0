"""The session's outbound edge. Inbound data is pushed with `Session.push_*` methods instead.

A transport must never block the session for long: one that talks to a remote peer keeps its
own bounded outbound queue and gives up on a peer that stops reading (see docs/architecture.md).
"""

from __future__ import annotations

from typing import Protocol

from bargein.runtime.events import Event
from bargein.runtime.messages import OutFrame


class Transport(Protocol):
    async def send_audio(self, frame: OutFrame) -> None:
        """Hand one paced output frame (PCM16 at the session's output rate) to the peer."""
        ...

    async def send_clear(self, turn: int) -> None:
        """Tell the peer to drop any queued playback of `turn` now (barge-in)."""
        ...

    async def send_event(self, event: Event) -> None:
        """Forward a session event; the transport decides which ones its peer wants."""
        ...
