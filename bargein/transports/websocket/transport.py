"""`WebSocketTransport`: the session's outbound edge over one WebSocket.

It never blocks the session: it encodes each frame and puts it on its own bounded `OutboundQueue`,
and a writer task moves frames to the socket. A peer that stops reading first loses old audio
(counted), and is dropped as a `slow_consumer` once one write has been stuck for
`stall_timeout` seconds or its control backlog is full: the connection is then closed under the
stuck write (`abort`), since a shielded write cannot be cancelled.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Protocol

import trio

from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame
from bargein.transports.mapping import event_to_message, words_message
from bargein.transports.outbound import Frame, OutboundQueue, OutboundStats
from bargein.transports.protocol import (
    MAX_SERVER_TEXT_CHARS,
    AssistantText,
    AudioOut,
    Clear,
    ErrorCode,
    ErrorMessage,
    LocalProtocolError,
    RemoteProtocolError,
    ServerMessage,
    ServerProtocol,
    SessionStarted,
)
from bargein.transports.websocket.limits import ConnectionLimits

log = logging.getLogger("bargein.transports")


class WebSocketLike(Protocol):
    async def accept(self) -> None: ...

    async def receive(self) -> str | bytes: ...

    async def send(self, data: str | bytes) -> None: ...

    async def close(self, code: int, reason: str = "") -> None: ...


class SlowConsumer(Exception):
    """The peer stopped reading: a write was stuck too long or the control backlog filled."""


class WebSocketTransport:
    """The session's `Transport` over one WebSocket, with its own bounded outbound queue."""

    def __init__(self, protocol: ServerProtocol, limits: ConnectionLimits) -> None:
        self.protocol = protocol
        self.limits = limits
        self.queue = OutboundQueue(
            max_audio=limits.max_audio_frames, max_control=limits.max_control_frames
        )
        # The code of the fatal error sent, if any: it picks the WebSocket close code.
        self.fatal_code: str | None = None
        # Rejections we reported to the client already: the session's `input_rejected` events
        # for them must not produce a second error frame.
        self._reported: Counter[str] = Counter()
        self._drained = trio.Event()
        # The session clock, once the session exists (for the `t` of frames we make up, `clear`).
        self.clock: Callable[[], float] | None = None
        # The highest turn number seen: a resumed conversation continues after it.
        self.last_turn = 0
        # Frames we could not send (our bug, logged), by message type: never the peer's fault.
        self.unsendable: Counter[str] = Counter()
        # Events of a session that emitted them before its `session.started` went out (it
        # failed while starting): sent right after it, in order.
        self._early: list[ServerMessage] = []
        # When the write in progress began (None between writes): the stall watchdog reads it.
        self._writing_since: float | None = None
        # The connection was closed under us after a stall (nothing more can be sent on it).
        self.aborted = False

    @property
    def stats(self) -> OutboundStats:
        return self.queue.stats

    # -- Transport ----------------------------------------------------------------------------

    async def send_audio(self, frame: OutFrame) -> None:
        self.send_audio_nowait(frame)
        await trio.lowlevel.checkpoint()

    def send_audio_nowait(self, frame: OutFrame) -> bool:
        """Queue the frame (the bounded queue drops its oldest audio when full): always taken."""
        words = words_message(frame)
        if words is not None:
            self.send_message(words)
        data = self._encode(AudioOut(frame.turn, frame.start, frame.pcm))
        if data is not None:
            assert isinstance(data, bytes)
            self.queue.put_audio(data, frame.turn)
        return True

    async def send_clear(self, turn: int) -> None:
        # Queued audio of the turn must not reach the peer at all; the clear jumps the queue so
        # the peer flushes what it already holds as soon as possible.
        self.queue.flush_turn(turn)
        t = None if self.clock is None else round(max(0.0, self.clock()), 6)
        data = self._encode(Clear(turn, t))
        if data is not None:
            self.queue.put_control(data, urgent=True)
        await trio.lowlevel.checkpoint()

    async def send_event(self, event: Event) -> None:
        if event.turn is not None:
            self.last_turn = max(self.last_turn, event.turn)
        if event.type is EventType.INPUT_REJECTED:
            code = str(event.data.get("code", ""))
            if self._reported[code] > 0:
                self._reported[code] -= 1
            else:
                self.send_message(
                    ErrorMessage(
                        code if code.isidentifier() and code.islower() else "rejected",
                        str(event.data.get("detail", ""))[:2000] or code,
                    )
                )
        else:
            message = event_to_message(event)
            if message is not None:
                self.send_message(message)
        await trio.lowlevel.checkpoint()

    # -- used by the connection handler -------------------------------------------------------

    def send_message(self, message: ServerMessage) -> bool:
        """Queue a control message (sync, never blocks); False if it could not be queued."""
        if isinstance(message, ErrorMessage) and message.fatal and self.fatal_code is None:
            self.fatal_code = message.code
        if not self.protocol.started_sent and self.protocol.started:
            if not isinstance(message, SessionStarted | ErrorMessage):
                if len(self._early) < 64:
                    self._early.append(message)
                return True
        if isinstance(message, AssistantText):
            return self._send_text(message)
        data = self._encode(message)
        if data is None:
            return False
        queued = self.queue.put_control(
            data, urgent=isinstance(message, ErrorMessage) and message.fatal
        )
        if isinstance(message, SessionStarted):
            early, self._early = self._early, []
            for waiting in early:
                self.send_message(waiting)
        return queued

    def _send_text(self, message: AssistantText) -> bool:
        # Deltas queued behind a slow peer merge into one frame (the first one's `t`), so a long
        # reply is a few frames, not hundreds, by the time the peer reads it.
        before = self.queue.tail_text(message.turn)
        if isinstance(before, AssistantText) and (
            len(before.delta) + len(message.delta) <= MAX_SERVER_TEXT_CHARS
        ):
            merged = AssistantText(message.turn, before.delta + message.delta, before.t)
            data = self._encode(merged)
            if data is not None:
                self.queue.replace_tail(data, merged)
                return True
        data = self._encode(message)
        if data is None:
            return False
        return self.queue.put_control(data, text_turn=message.turn, payload=message)

    def report_rejection(self, error: RemoteProtocolError) -> None:
        self._reported[error.code.value] += 1
        self.send_message(self.protocol.error_message(error))

    def _encode(self, message: ServerMessage) -> Frame | None:
        try:
            return self.protocol.send(message)
        except LocalProtocolError as exc:
            # Our bug, not the peer's: log it and keep the session going without that frame.
            if exc.code is not ErrorCode.CLOSED:
                self.unsendable[message.TYPE] += 1
                log.error("not sending %s: %s", message.TYPE, exc)
            return None

    def close(self) -> None:
        """No more frames; the writer sends what is queued and returns."""
        self.queue.close()

    async def wait_drained(self) -> None:
        await self._drained.wait()

    async def run_writer(
        self,
        send: Callable[[Frame], Awaitable[None]],
        abort: Callable[[], None] | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Move queued frames to the socket until closed and drained; raise `SlowConsumer` when
        the peer stops reading. `abort` closes the connection under a write that cannot be
        cancelled (hypercorn shields its socket writes); without it the write is cancelled."""
        task_status.started()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_backlog, abort)
            nursery.start_soon(self._watch_writes, abort)
            try:
                while True:
                    try:
                        frame = await self.queue.get()
                    except trio.EndOfChannel:
                        break
                    self._writing_since = trio.current_time()
                    try:
                        await send(frame)
                    except UnicodeError as exc:
                        # The codec never makes such a frame; if one slips through, this
                        # connection loses that frame, not its session (nor anyone else's).
                        self.unsendable["unencodable"] += 1
                        log.error("could not encode a frame: %s", exc)
                    finally:
                        self._writing_since = None
            finally:
                self._drained.set()
            nursery.cancel_scope.cancel()

    async def _watch_writes(self, abort: Callable[[], None] | None) -> None:
        # A few checks per `stall_timeout`, not a timer per write: a write is reported stuck
        # between 1 and 1.25 stall timeouts after it began.
        stall = self.limits.stall_timeout
        while True:
            await trio.sleep(stall / 4)
            since = self._writing_since
            if since is not None and trio.current_time() - since >= stall:
                self._give_up(abort)
                raise SlowConsumer(f"a write was stuck for {stall:g} s")

    async def _watch_backlog(self, abort: Callable[[], None] | None) -> None:
        await self.queue.failed.wait()
        self._give_up(abort)
        raise SlowConsumer(f"{self.limits.max_control_frames} control frames unread")

    def _give_up(self, abort: Callable[[], None] | None) -> None:
        self.queue.close()
        self.aborted = abort is not None
        if abort is not None:
            abort()
