"""Mic ingress: the transport's PCM chunks (any size, the client's rate) become fixed 16 kHz
analysis frames with their media time and level."""

from __future__ import annotations

import trio

from bargein.dsp import Framer, Resampler, rms_dbfs
from bargein.runtime.broadcast import DropOldestQueue
from bargein.runtime.messages import AudioFrame, Int16Array

from .vad import END_OF_INPUT, EndOfInput

ANALYSIS_RATE = 16000


async def run_mic(
    ingress: DropOldestQueue[Int16Array | EndOfInput],
    out: trio.MemorySendChannel[AudioFrame | EndOfInput],
    *,
    input_rate: int,
    frame_ms: int,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    resampler = Resampler(input_rate, ANALYSIS_RATE) if input_rate != ANALYSIS_RATE else None
    framer = Framer(ANALYSIS_RATE * frame_ms // 1000)
    start = 0
    task_status.started()

    async def emit(frames: list[Int16Array]) -> None:
        nonlocal start
        for pcm in frames:
            await out.send(AudioFrame(pcm, start, ANALYSIS_RATE, rms_dbfs(pcm)))
            start += len(pcm)

    async with out:
        async for chunk in ingress:
            if isinstance(chunk, EndOfInput):
                if resampler is not None:
                    await emit(framer.push(resampler.flush_int16()))
                last = framer.flush(pad=True)
                await emit([last] if last is not None else [])
                await out.send(END_OF_INPUT)
                return
            await emit(framer.push(resampler.process_int16(chunk) if resampler else chunk))
