"""Mic ingress, the session's audio front end: the transport's PCM chunks (any size, the client's
rate) become fixed 16 kHz analysis frames with their media time and level, go through the VAD
inline, and reach STT in batches with the speech events between them.

The front end (`MicFrontEnd`) is synchronous: an input in, an ordered outbox of what must reach
STT and the floor out. STT stays a task of its own (an engine may take its time; the VAD's
decisions must not wait for it), fed a batch of frames every `batch_frames` frames, or sooner
ahead of a speech event, so its pre-roll always holds the audio up to an onset before it hears
the onset.

Who runs it: a chunk pushed by the transport is taken by the run's shared step task
(`runtime.shared_steps`), which runs the front end of every session whose audio arrived in that
instant in one task step, and delivers the outbox without waiting. The session's mic task (in
its nursery: its lifetime, cancellation and errors) waits meanwhile, and takes over whenever
that cannot finish synchronously: a full channel downstream (the ingress queue then fills and
drops its oldest, as before), the end of input, or a failure (raised in the mic task, so it ends
the session like any actor's). A burst pushed without a checkpoint still queues and drops its
oldest: nothing runs inside `push_audio`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import trio

from bargein.dsp import Framer, Resampler, rms_dbfs
from bargein.runtime.broadcast import DropOldestQueue
from bargein.runtime.bus import EventBus
from bargein.runtime.messages import (
    AudioFrame,
    Int16Array,
    SpeechStarted,
    SpeechStopped,
    VoiceActivity,
)
from bargein.runtime.shared_steps import shared_steps

from .echo_path import EchoStage
from .end_of_turn import AskTurn, TurnVerdict
from .floor import FloorInput
from .level_tap import LevelTap
from .stt_inbox import SttInbox
from .turn_model import load_end_of_turn, turn_model
from .vad import END_OF_INPUT, EndOfInput, MicInput, SpeechEvent, VadConfig, VadOutput, VadStage

ANALYSIS_RATE = 16000

# An outbox entry: a message for a channel, or (None, call) for work that must happen in order
# with the deliveries (a bus report, a request to the end-of-turn model).
Outgoing = tuple[trio.MemorySendChannel[Any] | SttInbox | None, Any]


class MicFrontEnd:
    """Pure: the session's audio front end. `handle` takes one ingress item; what must reach
    STT and the floor queues in `outbox`, in order (`deliver_nowait` / `deliver` send it)."""

    def __init__(
        self,
        vad: VadStage,
        to_stt: SttInbox | trio.MemorySendChannel[VadOutput],
        to_floor: trio.MemorySendChannel[FloorInput],
        bus: EventBus,
        *,
        input_rate: int,
        frame_ms: int,
        batch_frames: int,
        echo: EchoStage | None = None,
        levels: LevelTap | None = None,
        assistant_active: Callable[[], bool] | None = None,
    ) -> None:
        self.vad = vad
        self._stt = to_stt
        self._floor = to_floor
        self._bus = bus
        self._resampler = (
            Resampler(input_rate, ANALYSIS_RATE) if input_rate != ANALYSIS_RATE else None
        )
        self._framer = Framer(ANALYSIS_RATE * frame_ms // 1000)
        self._batch_frames = max(1, batch_frames)
        self._echo = echo
        self._levels = levels
        self._assistant_active = assistant_active
        self._pending: list[AudioFrame] = []
        self._start = 0
        self._chunk_at = 0.0  # when the last chunk arrived: media "now" for a turn verdict
        self.ask: Callable[[AskTurn], None] = _no_model
        self.outbox: deque[Outgoing] = deque()
        self.ended = False  # the end of input went through: nothing more will come

    def handle(self, item: MicInput) -> None:
        if not isinstance(item, np.ndarray):  # (most items are audio)
            if isinstance(item, TurnVerdict):
                self._verdict(item)
            elif isinstance(item, EndOfInput):
                self._end()
            else:
                raise TypeError(f"the front end takes int16 arrays, got {type(item).__name__}")
        else:
            if self._echo is not None:
                self._echo.arrived(len(item), trio.current_time())  # captured until now
            if self.vad.smart_turn:  # (only a verdict reads it)
                self._chunk_at = trio.current_time()
            r = self._resampler
            self._emit(self._framer.push(r.process_int16(item) if r else item))

    def _verdict(self, verdict: TurnVerdict) -> None:
        media_now = self._start / ANALYSIS_RATE + trio.current_time() - self._chunk_at
        # Over an assistant turn the floor's policy decides; "incomplete" holds nothing.
        active = self._assistant_active
        stopped = self.vad.verdict(verdict, media_now, hold=active is None or not active())
        if stopped is not None:
            self._speech(stopped)

    def _end(self) -> None:
        if self._resampler is not None:
            self._emit(self._framer.push(self._resampler.flush_int16()))
        last = self._framer.flush(pad=True)
        self._emit([last] if last is not None else [])
        self._flush()
        stopped = self.vad.end_of_input()
        if stopped is not None:
            self._speech(stopped)
        self.outbox.append((self._stt, END_OF_INPUT))
        self.ended = True

    def _flush(self) -> None:
        pending = self._pending
        if pending:
            self.outbox.append((self._stt, tuple(pending)))
            pending.clear()
        heard = self._levels.take() if self._levels is not None else None
        if heard is not None:  # the floor hears the speech frames' levels once per batch
            self.outbox.append((self._floor, heard))

    def _speech(self, event: SpeechStarted | SpeechStopped) -> None:
        self._flush()  # STT gets the frames up to the event before the event
        self.outbox.append((None, partial(self.vad.report, event, self._bus)))
        self.outbox.append((self._floor, event))
        if self._levels is not None:
            self._levels.event(event)
        self.outbox.append((self._stt, event))

    def _emit(self, chunks: list[Int16Array]) -> None:
        echo, levels, vad, pending = self._echo, self._levels, self.vad, self._pending
        for pcm in chunks:
            frame = AudioFrame(pcm, self._start, ANALYSIS_RATE, rms_dbfs(pcm))
            self._start += len(pcm)
            heard = frame
            if echo is not None:  # our own voice out before STT and VAD; the gated copy to VAD
                frame, heard = echo.process(frame)
                for held in echo.take_released():  # held for the echo evidence, not echo
                    self._vad_event(vad.feed(held))
            pending.append(frame)
            self._vad_event(vad.feed(heard))
            if levels is not None:
                levels.frame(frame)
            if len(pending) >= self._batch_frames:
                self._flush()

    def _vad_event(self, event: SpeechEvent | AskTurn | None) -> None:
        if event is None:  # (most frames)
            pass
        elif isinstance(event, VoiceActivity):
            self.outbox.append((self._floor, event))
        elif isinstance(event, AskTurn):
            self.outbox.append((None, partial(self._ask, event)))
            self._flush()
            self.outbox.append((self._stt, event))  # the recognizer hears the pause now
        else:
            self._speech(event)

    def _ask(self, event: AskTurn) -> None:
        self.ask(event)


def _no_model(ask: AskTurn) -> None:
    raise RuntimeError("no end-of-turn model in this session")


def deliver_nowait(outbox: deque[Outgoing]) -> bool:
    """Send what the outbox holds without waiting; False if a channel was full (what is left
    stays queued, in order)."""
    while outbox:
        target, item = outbox[0]
        if target is None:
            item()
        else:
            try:
                target.send_nowait(item)
            except trio.WouldBlock:
                return False
        outbox.popleft()
    return True


async def deliver(outbox: deque[Outgoing]) -> None:
    """Send what the outbox holds, waiting for room where a channel is full."""
    while outbox:
        target, item = outbox.popleft()
        if target is None:
            item()
        else:
            try:
                target.send_nowait(item)
            except trio.WouldBlock:
                await target.send(item)  # STT or the floor is behind: the ingress queue fills


class _SharedMic:
    """The front end's step in the run's shared task, and its hand-over to the mic task."""

    def __init__(self, front: MicFrontEnd, ingress: DropOldestQueue[MicInput]) -> None:
        self._front = front
        self._ingress = ingress
        self._steps = shared_steps()
        self._context = trio.lowlevel.current_task().context  # the session's (compute mode)
        self._task: trio.lowlevel.Task | None = None  # the mic task, while the step runs it
        self._scheduled = False
        self._failure: Exception | None = None
        self.steps = 0  # shared steps taken (for tests)

    async def run(self) -> None:
        self._steps.attach()
        try:
            await self._run()
        finally:
            self._steps.detach()

    async def _run(self) -> None:
        front, ingress = self._front, self._ingress
        while True:
            await deliver(front.outbox)
            if front.ended or (ingress.closed and not len(ingress)):
                return
            self._task = trio.lowlevel.current_task()
            ingress.on_put(self._notify)
            if len(ingress) or ingress.closed:
                self._notify()
            await trio.lowlevel.wait_task_rescheduled(self._abort)
            if self._failure is not None:
                raise self._failure

    def _notify(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            self._steps.schedule(self._step)

    def _step(self) -> None:
        self._scheduled = False
        if self._task is None:  # the mic task has taken over, or is gone
            return
        self.steps += 1
        try:
            handed = self._context.run(self._drain)
        except Exception as exc:  # raised in the mic task: it ends the session, not the run
            self._failure = exc
            handed = True
        if handed:
            task, self._task = self._task, None
            self._ingress.on_put(None)
            trio.lowlevel.reschedule(task)

    def _drain(self) -> bool:
        """Run the front end on what is queued; True if the mic task must take over."""
        front, ingress = self._front, self._ingress
        while True:
            try:
                item = ingress.get_nowait()
            except trio.WouldBlock:
                return False
            except trio.EndOfChannel:
                return True
            front.handle(item)
            if not deliver_nowait(front.outbox) or front.ended:
                return True

    def _abort(self, _: object) -> trio.lowlevel.Abort:
        self._task = None  # a step already scheduled finds nobody and does nothing
        self._ingress.on_put(None)
        return trio.lowlevel.Abort.SUCCEEDED


async def run_mic(
    ingress: DropOldestQueue[MicInput],
    vad_config: VadConfig,
    to_stt: SttInbox | trio.MemorySendChannel[VadOutput],
    to_floor: trio.MemorySendChannel[FloorInput],
    bus: EventBus,
    *,
    input_rate: int,
    frame_ms: int,
    batch_frames: int,
    echo: EchoStage | None = None,
    levels: LevelTap | None = None,
    assistant_active: Callable[[], bool] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    model = await load_end_of_turn(vad_config, bus)  # None: silence endpointing
    vad = VadStage(vad_config, smart_turn=model is not None)
    front = MicFrontEnd(
        vad, to_stt, to_floor, bus,
        input_rate=input_rate, frame_ms=frame_ms, batch_frames=batch_frames,
        echo=echo, levels=levels, assistant_active=assistant_active,
    )
    task_status.started()
    async with to_stt, to_floor, turn_model(model, ingress, bus, vad.asking) as ask:
        front.ask = ask
        await _SharedMic(front, ingress).run()
