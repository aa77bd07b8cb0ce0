"""`TelephonyTransport`: the session's outbound edge onto one carrier media stream.

Egress already paces output in real time, at most `SessionConfig.egress_lead_ms` ahead (the
telephony handler sets it); here each 20 ms output frame becomes one `media` message, a frame
that carries the end of a word is followed by a `mark`, and a barge-in becomes `clear`. Frames go
through a bounded `OutboundQueue` and one writer task, like the browser transport: the session
never blocks on the socket, and a carrier that stops reading is given up on.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame
from bargein.transports.outbound import OutboundQueue
from bargein.transports.telephony.codec import FRAME_SAMPLES, CarrierCodec
from bargein.transports.telephony.marks import MarkTracker

log = logging.getLogger("bargein.transports.telephony")


class CarrierStalled(Exception):
    """The carrier stopped reading: a write was stuck too long or the control backlog filled."""


@dataclass(frozen=True, slots=True)
class TelephonyLimits:
    max_audio_frames: int = 200  # 4 s of queued media before the oldest is dropped
    max_control_frames: int = 512
    stall_timeout: float = 5.0
    close_timeout: float = 2.0
    handshake_timeout: float = 10.0
    # A carrier streams media every 20 ms for the whole call, silence included: no frame at
    # all for this long and it is gone (a partition sends no FIN), so the call ends.
    silence_timeout: float = 30.0
    # Malformed carrier messages a call survives; one more ends it (`protocol_error`).
    max_rejections: int = 1000


@dataclass(slots=True)
class WriteLog:
    """When frames left for the carrier (trio clock), for tests and the benchmark."""

    clears: list[float] = field(default_factory=list)
    barge_ins: list[float] = field(default_factory=list)  # the session's barge_in decisions
    media: int = 0
    marks: int = 0


class TelephonyTransport:
    def __init__(self, codec: CarrierCodec, marks: MarkTracker, limits: TelephonyLimits) -> None:
        self.codec = codec
        self.marks = marks
        self.limits = limits
        self.queue = OutboundQueue(
            max_audio=limits.max_audio_frames, max_control=limits.max_control_frames
        )
        # `Session.report_playback`, once the session exists: echoes of marks feed it.
        self.report: Callable[[int, int], bool] | None = None
        self.written = WriteLog()
        self.events: deque[Event] = deque(maxlen=1024)  # turn outcomes, for the call's record
        self._turns: set[int] = set()
        self._drained = trio.Event()

    # -- Transport ----------------------------------------------------------------------------

    async def send_audio(self, frame: OutFrame) -> None:
        if frame.turn not in self._turns:
            self._turns.add(frame.turn)
            # The carrier reports playback (by marks): until a mark comes back, nothing of the
            # turn counts as heard, however much was sent.
            if self.report is not None:
                self.report(frame.turn, 0)
        payload = self.codec.encode_audio(frame.pcm)
        for at in range(0, len(payload), FRAME_SAMPLES):
            media = self.codec.encode_media(payload[at : at + FRAME_SAMPLES])
            # Audio items (bytes in the queue, a text frame on the wire): a `clear` flushes
            # them from our queue, with the turn's marks.
            self.queue.put_audio(media.encode(), frame.turn)
        if frame.words:  # the frame carries the end of at least one word
            name = self.marks.place(frame.turn, frame.end)
            self.queue.put_audio(self.codec.encode_mark(name).encode(), frame.turn)
        await trio.lowlevel.checkpoint()

    async def send_clear(self, turn: int) -> None:
        self.queue.flush_turn(turn)
        # From now on an echo of any mark sent so far means "dropped", not "heard".
        self.marks.clear(trio.current_time())
        self.queue.put_control(self.codec.encode_clear(), urgent=True)
        await trio.lowlevel.checkpoint()

    async def send_event(self, event: Event) -> None:
        if event.type is EventType.BARGE_IN:
            self.written.barge_ins.append(trio.current_time())
        if event.type in (EventType.TURN_COMPLETED, EventType.TURN_CANCELLED):
            self.events.append(event)
        await trio.lowlevel.checkpoint()

    # -- the writer ---------------------------------------------------------------------------

    def close(self) -> None:
        self.queue.close()

    async def wait_drained(self) -> None:
        await self._drained.wait()

    async def run_writer(
        self,
        send: Callable[[str], Awaitable[None]],
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        clear = self.codec.encode_clear()
        try:
            while True:
                if self.queue.failed.is_set():
                    raise CarrierStalled(f"{self.limits.max_control_frames} frames unread")
                try:
                    frame = await self.queue.get()
                except trio.EndOfChannel:
                    return
                if isinstance(frame, bytes):
                    frame = frame.decode()
                with trio.move_on_after(self.limits.stall_timeout) as stuck:
                    await send(frame)
                if stuck.cancelled_caught:
                    raise CarrierStalled(f"a write was stuck for {self.limits.stall_timeout} s")
                if frame == clear:
                    self.written.clears.append(trio.current_time())
                elif frame.startswith('{"event":"media"'):
                    self.written.media += 1
                else:
                    self.written.marks += 1
        finally:
            self._drained.set()
