"""Mic ingress, the session's audio front end: the transport's PCM chunks (any size, the client's
rate) become fixed 16 kHz analysis frames with their media time and level, go through the VAD
inline, and reach STT in batches with the speech events between them.

One task for framing and VAD: a channel hop per 20 ms frame between them bought nothing (the
VAD is a few microseconds of synchronous work) and cost more than the VAD itself. STT stays a
task of its own (an engine may take its time; the VAD's decisions must not wait for it), fed a
batch of frames every `batch_frames` frames, or sooner ahead of a speech event, so its pre-roll
always holds the audio up to an onset before it hears the onset.
"""

from __future__ import annotations

from collections.abc import Callable

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

from .echo_path import EchoStage
from .end_of_turn import AskTurn, TurnVerdict
from .floor import FloorInput
from .level_tap import LevelTap
from .turn_model import load_end_of_turn, turn_model
from .vad import END_OF_INPUT, EndOfInput, MicInput, VadConfig, VadOutput, VadStage

ANALYSIS_RATE = 16000


async def run_mic(
    ingress: DropOldestQueue[MicInput],
    vad_config: VadConfig,
    to_stt: trio.MemorySendChannel[VadOutput],
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
    resampler = Resampler(input_rate, ANALYSIS_RATE) if input_rate != ANALYSIS_RATE else None
    framer = Framer(ANALYSIS_RATE * frame_ms // 1000)
    model = await load_end_of_turn(vad_config, bus)  # None: silence endpointing
    vad = VadStage(vad_config, smart_turn=model is not None)
    batch_frames = max(1, batch_frames)
    pending: list[AudioFrame] = []
    start = 0
    chunk_at = 0.0  # when the last chunk arrived: media time "now" for an end-of-turn verdict
    task_status.started()

    async def flush() -> None:
        if pending:
            batch = tuple(pending)
            pending.clear()
            try:
                to_stt.send_nowait(batch)  # the next `get` is this task's schedule point
            except trio.WouldBlock:
                await to_stt.send(batch)  # STT is behind: wait, and the ingress queue fills
        heard = levels.take() if levels is not None else None
        if heard is not None:  # the floor hears the speech frames' levels once per batch
            await to_floor.send(heard)

    async def speech(event: SpeechStarted | SpeechStopped) -> None:
        await flush()  # STT gets the frames up to the event before the event
        vad.report(event, bus)
        await to_floor.send(event)
        if levels is not None:
            levels.event(event)
        await to_stt.send(event)

    async def emit(chunks: list[Int16Array]) -> None:
        nonlocal start
        for pcm in chunks:
            frame = AudioFrame(pcm, start, ANALYSIS_RATE, rms_dbfs(pcm))
            start += len(pcm)
            heard = frame
            if echo is not None:  # our own voice out before STT and VAD; the gated copy to VAD
                frame, heard = echo.process(frame)
            pending.append(frame)
            event = vad.feed(heard)
            if event is None:  # (most frames)
                pass
            elif isinstance(event, VoiceActivity):
                await to_floor.send(event)
            elif isinstance(event, AskTurn):
                ask(event)
                await flush()
                await to_stt.send(event)  # the recognizer hears the pause now, not 100 ms on
            else:
                await speech(event)
            if levels is not None:
                levels.frame(frame)
            if len(pending) >= batch_frames:
                await flush()

    async with to_stt, to_floor, turn_model(model, ingress, bus, vad.asking) as ask:
        get = ingress.get  # (not `async for`: one coroutine frame less per 20 ms chunk)
        while True:
            try:
                chunk = await get()
            except trio.EndOfChannel:
                return
            if isinstance(chunk, TurnVerdict):
                media_now = start / ANALYSIS_RATE + trio.current_time() - chunk_at
                # Over an assistant turn the floor's policy decides; "incomplete" holds nothing.
                hold = assistant_active is None or not assistant_active()
                stopped = vad.verdict(chunk, media_now, hold=hold)
                if stopped is not None:
                    await speech(stopped)
                continue
            if isinstance(chunk, EndOfInput):
                if resampler is not None:
                    await emit(framer.push(resampler.flush_int16()))
                last = framer.flush(pad=True)
                await emit([last] if last is not None else [])
                await flush()
                stopped = vad.end_of_input()
                if stopped is not None:
                    await speech(stopped)
                await to_stt.send(END_OF_INPUT)
                return
            if echo is not None:
                echo.arrived(len(chunk), trio.current_time())  # captured until now
            if model is not None:  # (only a verdict reads it)
                chunk_at = trio.current_time()
            await emit(framer.push(resampler.process_int16(chunk) if resampler else chunk))
