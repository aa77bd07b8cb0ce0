"""The light embedded engines' costs (pocketsphinx STT, espeak-ng TTS, the local planner), for
`bargein bench engines`. STT is fed in 20 ms frames as the stt actor does."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import trio

from bargein.benchmarks.engines_common import (
    FRAME,
    RECORDINGS,
    stats_ms,
    time_to_first_audio,
    word_error_rate,
)
from bargein.engines.base import PlanOutput, PlanRequest, TtsChunk
from bargein.engines.embedded import EspeakTts, LocalPlanner, SphinxStt
from bargein.runtime.compute import set_compute_mode
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import Int16Array


async def bench_stt(recordings: dict[str, Int16Array]) -> dict[str, Any]:
    loads = {}
    for mode, stt in (("dictation", SphinxStt()), ("keyword", SphinxStt(keyphrases=["forward"]))):
        started = time.perf_counter()
        await stt.warm()
        loads[mode] = round(time.perf_counter() - started, 3)
    stt = SphinxStt()
    await stt.warm()  # model loading is reported above, not charged to the first file
    files: list[dict[str, Any]] = []
    feed_wall: list[float] = []
    feed_loop_cpu: list[float] = []
    feed_inline: list[float] = []
    finals: list[float] = []
    total_audio = total_wall = total_cpu = 0.0
    for name, pcm in recordings.items():
        audio_s = len(pcm) / 16000
        # Thread mode, as in a real-time session: decoding runs in a worker thread.
        recognizer = stt.recognizer()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        await recognizer.start_utterance()
        for i in range(0, len(pcm), FRAME):
            w, c = time.perf_counter(), time.thread_time()
            await recognizer.feed(pcm[i : i + FRAME])
            feed_loop_cpu.append(time.thread_time() - c)
            feed_wall.append(time.perf_counter() - w)
        end0 = time.perf_counter()
        text = await recognizer.end_utterance()
        finals.append(time.perf_counter() - end0)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await recognizer.aclose()
        # Inline mode: the loop thread's CPU per feed when the decode runs on the loop itself
        # (CPU, not wall: inline run_cpu then sleeps as long again to charge the clock).
        set_compute_mode("inline")
        try:
            recognizer = stt.recognizer()
            await recognizer.start_utterance()
            for i in range(0, len(pcm), FRAME):
                c = time.thread_time()
                await recognizer.feed(pcm[i : i + FRAME])
                feed_inline.append(time.thread_time() - c)
            await recognizer.end_utterance()
            await recognizer.aclose()
        finally:
            set_compute_mode("thread")
        reference = RECORDINGS.get(name)
        files.append(
            {
                "file": name,
                "audio_s": round(audio_s, 3),
                "rtf": round(wall / audio_s, 4),
                "cpu_s_per_audio_s": round(cpu / audio_s, 4),
                "final_ms": round(finals[-1] * 1e3, 2),
                "wer": None if reference is None else round(word_error_rate(reference, text), 3),
                "transcript": text,
            }
        )
        total_audio += audio_s
        total_wall += wall
        total_cpu += cpu
    wers: list[float] = [f["wer"] for f in files if isinstance(f["wer"], float)]
    return {
        "engine": stt.name,
        "decoder_load_s": loads,
        "audio_s": round(total_audio, 3),
        "rtf": round(total_wall / total_audio, 4),
        "cpu_s_per_audio_s": round(total_cpu / total_audio, 4),
        "feed_20ms": {
            "await_ms": stats_ms(feed_wall),
            "loop_cpu_ms": stats_ms(feed_loop_cpu),
            "inline_loop_cpu_ms": stats_ms(feed_inline),
        },
        "final_ms": stats_ms(finals),
        "mean_wer": round(float(np.mean(wers)), 3) if wers else None,
        "files": files,
    }


async def bench_tts(sentences: Sequence[str], repeat: int) -> dict[str, Any]:
    tts = EspeakTts()
    await trio.lowlevel.checkpoint()
    tts.synthesize_sync("Warm up.")  # the voice load is a one-off, not per sentence
    first_audio: list[float] = []
    synth: list[float] = []
    total_audio = total_wall = total_cpu = 0.0
    for _ in range(repeat):
        for sentence in sentences:
            send, receive = trio.open_memory_channel[TtsChunk](10_000)
            samples = 0
            cpu0 = time.process_time()
            started = time.perf_counter()
            await tts.synthesize(sentence, send)
            wall = time.perf_counter() - started
            total_cpu += time.process_time() - cpu0
            send.close()
            async with receive:
                async for chunk in receive:
                    samples += len(chunk.pcm)
            synth.append(wall)
            total_wall += wall
            total_audio += samples / tts.sample_rate
            first_audio.append(await time_to_first_audio(tts, sentence))
    return {
        "engine": tts.name,
        "sample_rate": tts.sample_rate,
        "sentences": len(sentences) * repeat,
        "audio_s": round(total_audio, 3),
        "rtf": round(total_wall / total_audio, 5),
        "cpu_s_per_audio_s": round(total_cpu / total_audio, 5),
        "first_audio_ms": stats_ms(first_audio),
        "sentence_ms": stats_ms(synth),
        "streaming": "per sentence, then chunked (see docs/engines.md)",
    }


async def bench_planner() -> dict[str, Any]:
    planner = LocalPlanner()
    send, receive = trio.open_memory_channel[PlanOutput](100_000)
    request = PlanRequest(1, (ChatMessage("user", "tell me a story"),))
    started = time.perf_counter()
    await planner.respond(request, send)
    wall = time.perf_counter() - started
    send.close()
    deltas = [d async for d in receive]
    return {"engine": planner.name, "story_deltas": len(deltas), "story_ms": round(wall * 1e3, 3)}
