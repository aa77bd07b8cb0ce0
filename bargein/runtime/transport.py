"""The session's outbound edge. Inbound data is pushed with `Session.push_*` methods instead.

A transport must never block the session for long: one that talks to a remote peer keeps its
own bounded outbound queue and gives up on a peer that stops reading (see docs/architecture.md).

A transport whose `send_audio` is synchronous work plus a checkpoint may also have
`send_audio_nowait(frame) -> bool` (`SendsAudioNowait`): the same send without the checkpoint,
False (and nothing sent) when it cannot take the frame now. Egress then sends a turn's frames
from the media clock's wake-up without a task step per frame, and uses `send_audio` for what
`send_audio_nowait` refuses. A subclass that overrides `send_audio` must override (or remove)
`send_audio_nowait` too, or frames would bypass its `send_audio`.
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


class SendsAudioNowait(Protocol):
    def send_audio_nowait(self, frame: OutFrame) -> bool:
        """`send_audio` without the checkpoint; False (nothing sent) if it cannot take it now."""
        ...
