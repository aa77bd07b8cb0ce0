"""The neural embedded engines' costs (Whisper tiny.en, Piper joe), for `bargein bench engines`.

- finals: each recording as one utterance, fed in 100 ms batches (the stt actor's batch) in
  thread mode, partials off and no speculation, so `end_utterance` is one full decode: WER (the
  same normalization as the light engines), the final's cost, CPU s per audio s;
- partial modes ("whisper" every 500 ms, "sphinx" first pass): CPU s per audio s with
  speculation on (thread mode), and on the virtual clock with compute charged, fed at the live
  pace: the first partial's delay after the speech onset, and what each mode makes of the two
  "Mm. Yeah." backchannels of the AMI recording (content words the confirm policy would count);
- TTS: time to first audio per sentence (first-phrase split on, and off), real-time factor;
- word marks against the word times Whisper recognizes in the synthesized audio;
- cold start and resident memory, measured in a fresh process.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import trio
import trio.testing

from bargein.benchmarks.engines_common import RECORDINGS, stats_ms, time_to_first_audio
from bargein.benchmarks.engines_common import word_error_rate as wer
from bargein.dsp import resample
from bargein.runtime.compute import set_compute_mode
from bargein.runtime.messages import Int16Array
from bargein.wavio import read_wav

BATCH = 1600  # 100 ms at 16 kHz
LEAD_S = 0.36  # stt pre-roll (200 ms) + the VAD's onset decision (start_ms 160)
# The two "Mm. Yeah." of speaker C in the AMI close-talk track (see the audio README).
BACKCHANNELS = (("pyannote_ami_source2.wav", 27.0, 29.5), ("pyannote_ami_source2.wav", 41.5, 43.5))


async def _feed(recognizer: Any, pcm: Int16Array) -> list[str]:
    partials = []
    await recognizer.start_utterance()
    for i in range(0, len(pcm), BATCH):
        partial = await recognizer.feed(pcm[i : i + BATCH])
        if partial:
            partials.append(partial)
    return partials


async def bench_finals(recordings: dict[str, Int16Array]) -> dict[str, Any]:
    from bargein.engines.neural.whisper_stt import WhisperStt

    stt = WhisperStt(partials="off", speculate_ms=0)
    await stt.warm()
    files = []
    finals: list[float] = []
    total_audio = total_cpu = 0.0
    for name, pcm in recordings.items():
        recognizer = stt.recognizer()
        cpu0 = time.process_time()
        await _feed(recognizer, pcm)
        started = time.perf_counter()
        text = await recognizer.end_utterance()
        finals.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu0
        word_times = await recognizer.word_times()  # aligned on demand, after the final
        await recognizer.aclose()
        reference = RECORDINGS.get(name)
        audio_s = len(pcm) / 16000
        total_audio += audio_s
        total_cpu += cpu
        files.append(
            {
                "file": name,
                "audio_s": round(audio_s, 3),
                "final_ms": round(finals[-1] * 1e3, 1),
                "wer": None if reference is None else round(wer(reference, text), 3),
                "transcript": text,
                "word_times": [[w.text, w.start, w.end] for w in word_times][:40],
            }
        )
    wers = [f["wer"] for f in files if isinstance(f["wer"], float)]
    for f in files[1:]:  # word times of the first file only, as a sample
        del f["word_times"]
    return {
        "engine": stt.name,
        "decode": "int8, CPU, 1 thread, greedy, window fitted to the utterance (>= 10 s); "
        "final_ms without word alignment (word_times() aligns on demand, after the final)",
        "audio_s": round(total_audio, 3),
        "cpu_s_per_audio_s_finals_only": round(total_cpu / total_audio, 4),
        "final_ms": stats_ms(finals),
        "mean_wer": round(float(np.mean(wers)), 3) if wers else None,
        "max_wer": max(wers) if wers else None,
        "files": files,
    }


async def _cpu_per_audio(mode: str, recordings: dict[str, Int16Array]) -> float:
    from bargein.engines.neural.whisper_stt import WhisperStt

    stt = WhisperStt(partials=mode)  # type: ignore[arg-type]
    await stt.warm()
    audio = cpu = 0.0
    for pcm in recordings.values():
        recognizer = stt.recognizer()
        cpu0 = time.process_time()
        await _feed(recognizer, pcm)
        await recognizer.end_utterance()
        cpu += time.process_time() - cpu0
        audio += len(pcm) / 16000
        await recognizer.aclose()
    return round(cpu / audio, 4)


def _paced(mode: str, pcm: Int16Array) -> dict[str, Any]:
    """One utterance fed at the live pace on the virtual clock, compute charged (inline)."""
    from bargein.engines.neural.whisper_decode import voiced_onset
    from bargein.engines.neural.whisper_stt import WhisperStt

    stt = WhisperStt(partials=mode)  # type: ignore[arg-type]
    stt.decoder()
    if stt._sphinx is not None:
        trio.run(stt._sphinx.warm)
    out: dict[str, Any] = {}
    onset = voiced_onset(pcm)
    # As in a session: the utterance opens at the VAD's decision (~160 ms after the onset) with
    # the stt actor's 200 ms pre-roll, so the recognizer starts ~360 ms before the onset.
    start = max(0, int(((onset or 0.0) - LEAD_S) * 16000))
    pcm = pcm[start:]
    onset = None if onset is None else onset - start / 16000

    async def run() -> None:
        set_compute_mode("inline")
        recognizer = stt.recognizer()
        t0 = trio.current_time()
        await recognizer.start_utterance()
        partials: list[tuple[float, str]] = []
        for k, i in enumerate(range(0, len(pcm), BATCH)):
            await trio.sleep_until(t0 + (k + 1) * BATCH / 16000)
            partial = await recognizer.feed(pcm[i : i + BATCH])
            if partial:
                partials.append((trio.current_time() - t0, partial))
        final = await recognizer.end_utterance()
        out["final_after_audio_end_ms"] = round(
            1e3 * (trio.current_time() - t0 - len(pcm) / 16000), 1
        )
        out["partials"] = partials
        out["final"] = final
        await recognizer.aclose()

    trio.run(run, clock=trio.testing.MockClock(autojump_threshold=0))
    first = out["partials"][0][0] if out["partials"] else None
    out["first_partial_after_onset_ms"] = (
        None if first is None or onset is None else round(1e3 * (first - onset), 1)
    )
    return out


async def bench_partials(
    recordings: dict[str, Int16Array], audio_dir: Path
) -> dict[str, Any]:
    from bargein.actors.policy import InterruptionPolicy
    from bargein.engines.embedded import SphinxStt

    policy = InterruptionPolicy()
    result: dict[str, Any] = {}
    clips = []
    for name, start, end in BACKCHANNELS:
        if (audio_dir / name).is_file():
            pcm, _ = read_wav(audio_dir / name)
            clips.append((f"{name}@{start}", pcm[int(start * 16000) : int(end * 16000)]))
    for mode in ("whisper", "sphinx"):
        delays = []
        lags = []
        for pcm in recordings.values():
            paced = await trio.to_thread.run_sync(_paced, mode, pcm)
            if paced["first_partial_after_onset_ms"] is not None:
                delays.append(paced["first_partial_after_onset_ms"] / 1e3)
            lags.append(paced["final_after_audio_end_ms"] / 1e3)
        backchannels = []
        for label, pcm in clips:
            paced = await trio.to_thread.run_sync(_paced, mode, pcm)
            texts = [t for _, t in paced["partials"]]
            backchannels.append(
                {
                    "clip": label,
                    "partials": texts,
                    "content_words_max": max((policy.content_words(t) for t in texts), default=0),
                    "final": paced["final"],
                }
            )
        result[mode] = {
            "cpu_s_per_audio_s": await _cpu_per_audio(mode, recordings),
            "first_partial_after_onset_ms": stats_ms(delays),
            "final_after_audio_end_ms": stats_ms(lags),
            "backchannels": backchannels,
        }
    sphinx_only = []
    stt = SphinxStt()
    await stt.warm()
    for label, pcm in clips:
        recognizer = stt.recognizer()
        partials = await _feed(recognizer, pcm)
        final = await recognizer.end_utterance()
        await recognizer.aclose()
        sphinx_only.append({"clip": label, "partials": partials[-3:], "final": final})
    result["light_pocketsphinx_on_backchannels"] = sphinx_only
    result["note"] = (
        "whisper: a Whisper decode of the growing utterance every 500 ms of fed audio (skipped "
        "while the stt actor lags the clock); sphinx: pocketsphinx partials per 100 ms batch, "
        "Whisper's final replaces them. first_partial_after_onset is on the virtual clock with "
        "compute charged, from the first voiced frame (the utterance opens 360 ms before it, as "
        "the VAD's decision plus the stt pre-roll do in a session); content_words_max is what "
        "InterruptionPolicy.content_words() gives the partials (0 = a backchannel)."
    )
    return result


async def bench_tts(sentences: Sequence[str], repeat: int) -> dict[str, Any]:
    from bargein.engines.base import TtsChunk
    from bargein.engines.neural.piper_tts import PiperTts

    tts = PiperTts()
    whole = PiperTts(first_phrase_words=0)
    await tts.warm()
    first_split: list[float] = []
    first_whole: list[float] = []
    total_audio = total_wall = 0.0
    for _ in range(repeat):
        for sentence in sentences:
            send, receive = trio.open_memory_channel[TtsChunk](10_000)
            started = time.perf_counter()
            await tts.synthesize(sentence, send)
            total_wall += time.perf_counter() - started
            send.close()
            async with receive:
                total_audio += sum([len(c.pcm) async for c in receive]) / tts.sample_rate
            first_split.append(await time_to_first_audio(tts, sentence))
            first_whole.append(await time_to_first_audio(whole, sentence))
    return {
        "engine": tts.name,
        "sample_rate": tts.sample_rate,
        "sentences": len(sentences) * repeat,
        "audio_s": round(total_audio, 3),
        "rtf": round(total_wall / total_audio, 4),
        "first_audio_ms": stats_ms(first_split),
        "first_audio_ms_without_first_phrase_split": stats_ms(first_whole),
        "threads": tts.threads,
    }


def _norm(word: str) -> str:
    return re.sub(r"[^a-z0-9']", "", word.lower())


async def bench_marks(sentences: Sequence[str]) -> dict[str, Any]:
    """Mark error: |mark − Whisper's start of the same word|, words matched in order."""
    from bargein.engines.neural.piper_tts import PiperTts
    from bargein.engines.neural.whisper_stt import shared_decoder

    tts = PiperTts()
    decoder = await trio.to_thread.run_sync(shared_decoder)
    errors: list[float] = []
    for sentence in sentences:
        pcm, marks = await trio.to_thread.run_sync(tts.synthesize_sync, sentence)
        audio = resample(pcm.astype(np.float32) / np.float32(32768), tts.sample_rate, 16000)
        heard = await trio.to_thread.run_sync(
            decoder.transcribe_sync, (audio * 32767).astype(np.int16)
        )
        recognized = [(_norm(w.text), w.start) for w in heard.words]
        j = 0
        for mark in marks:
            for k in range(j, min(j + 3, len(recognized))):
                if recognized[k][0] == _norm(mark.text):
                    errors.append(abs(recognized[k][1] - mark.sample / tts.sample_rate))
                    j = k + 1
                    break
    return {
        "method": "model durations (VITS duration predictor, exposed from the ONNX graph)",
        "sentences": len(sentences),
        "words_matched": len(errors),
        "error_ms": stats_ms(errors),
    }


_COLD = """
import json, time, sys
from bargein.benchmarks.common import rss_kib
import numpy as np
out = {"rss_mib_python_and_bargein": round(rss_kib() / 1024, 1)}
t = time.perf_counter()
from bargein.engines.neural.models import whisper_model, piper_session
from bargein.engines.neural.whisper_decode import WhisperDecoder
d = WhisperDecoder(whisper_model())
out["whisper_load_s"] = round(time.perf_counter() - t, 3)
t = time.perf_counter()
d.generate(d.encode(np.zeros(16000, np.int16)))
out["whisper_first_decode_s"] = round(time.perf_counter() - t, 3)
t = time.perf_counter()
d.generate(d.encode(np.zeros(16000, np.int16)))
out["whisper_second_decode_s"] = round(time.perf_counter() - t, 3)
out["rss_mib_with_whisper"] = round(rss_kib() / 1024, 1)
t = time.perf_counter()
piper_session()
out["piper_load_s"] = round(time.perf_counter() - t, 3)
from bargein.engines.neural.piper_tts import PiperTts
p = PiperTts()
t = time.perf_counter()
p.synthesize_sync("Hello there.")
out["piper_first_sentence_s"] = round(time.perf_counter() - t, 3)
t = time.perf_counter()
p.synthesize_sync("Hello there.")
out["piper_second_sentence_s"] = round(time.perf_counter() - t, 3)
out["rss_mib_with_both_models"] = round(rss_kib() / 1024, 1)
print(json.dumps(out))
"""


def cold_start() -> dict[str, Any]:
    """Load times and resident memory in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-c", _COLD], capture_output=True, text=True, timeout=300, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:]}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result
