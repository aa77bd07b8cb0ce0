"""What the STT actor's batch (`SessionConfig.stt_batch_ms`) costs with the real recognizers.

The stt actor hands the recognizer the utterance's audio in batches of `stt_batch_ms`; a
smaller batch lets a word's partial come sooner (at most one batch after the word's audio is
captured) and costs one `feed` call — a worker-thread hop, a decode step and a hypothesis read —
per batch. For each engine and batch this feeds every recording as one utterance in
thread mode, as a live session does, and reports:

- `cpu_s_per_audio_s`: the process's CPU time (all threads) per second of fed audio,
  `end_utterance` included: the cost while a user speaks (x 100 = % of one core);
- `feeds_per_audio_s` and `cpu_us_per_feed`: how the cost splits into calls;
- `final`: the final transcripts' word error rate, so a batch that changed what the engine
  hears would show (pocketsphinx streams, so it should not).

Engines: `sphinx` (the embedded `SphinxStt`), `whisper` (`WhisperStt`, partials every 500 ms
of fed audio, the neural default) and `whisper_sphinx` (Whisper finals, pocketsphinx first-pass
partials). Run under `flock /tmp/team/bench.lock` on a shared machine; CPU time moves far less
with contention than wall time does. `python bench/stt_batch.py --json`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import trio

from bargein.benchmarks.engines_common import DEFAULT_AUDIO_DIR, RECORDINGS, read_pcm
from bargein.benchmarks.engines_common import word_error_rate as wer
from bargein.runtime.messages import Int16Array

BATCHES_MS = (100, 60, 40, 20)
ENGINES = ("sphinx", "whisper", "whisper_sphinx")


def make_engine(name: str) -> Any:  # SphinxStt | WhisperStt (both have warm())
    if name == "sphinx":
        from bargein.engines.embedded import SphinxStt

        return SphinxStt()
    from bargein.engines.neural.whisper_stt import WhisperStt

    return WhisperStt(partials="sphinx" if name == "whisper_sphinx" else "whisper")


async def _one(engine: Any, pcm: Int16Array, batch: int) -> tuple[float, int, str]:
    """(CPU seconds, feeds, final) for one recording fed as one utterance in `batch` samples."""
    recognizer = engine.recognizer()
    cpu0 = time.process_time()
    await recognizer.start_utterance()
    feeds = 0
    for i in range(0, len(pcm), batch):
        await recognizer.feed(pcm[i : i + batch])
        feeds += 1
    final = await recognizer.end_utterance()
    cpu = time.process_time() - cpu0
    await recognizer.aclose()
    return cpu, feeds, final


async def measure(
    engine_name: str, recordings: dict[str, Int16Array], batches_ms: tuple[int, ...], passes: int
) -> dict[str, Any]:
    engine = make_engine(engine_name)
    await engine.warm()
    # one untimed pass: first-use costs (graph optimization, caches) are not the batch's
    for pcm in recordings.values():
        await _one(engine, pcm, 1600)
    audio_s = sum(len(p) for p in recordings.values()) / 16000
    rows: dict[str, Any] = {}
    # passes interleave the batches, so a drift in the machine's speed spreads over all of them
    cpu = {b: 0.0 for b in batches_ms}
    feeds = {b: 0 for b in batches_ms}
    wers: dict[int, list[float]] = {b: [] for b in batches_ms}
    for _ in range(passes):
        for b in batches_ms:
            for name, pcm in recordings.items():
                c, n, final = await _one(engine, pcm, 16 * b)
                cpu[b] += c
                feeds[b] += n
                reference = RECORDINGS.get(name)
                if reference is not None:
                    wers[b].append(wer(reference, str(final)))
    for b in batches_ms:
        total = audio_s * passes
        rows[str(b)] = {
            "cpu_s_per_audio_s": round(cpu[b] / total, 4),
            "feeds_per_audio_s": round(feeds[b] / total, 1),
            "cpu_us_per_feed": round(1e6 * cpu[b] / feeds[b], 1),
            "mean_wer": round(float(np.mean(wers[b])), 3) if wers[b] else None,
        }
    return {"audio_s_per_pass": round(audio_s, 2), "passes": passes, "batch_ms": rows}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="stt_batch", description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--audio-dir", type=Path, default=DEFAULT_AUDIO_DIR)
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated")
    parser.add_argument("--batches", default=",".join(map(str, BATCHES_MS)), help="ms, a list")
    parser.add_argument("--passes", type=int, default=2)
    args = parser.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e]
    unknown = sorted(set(engines) - set(ENGINES))
    if unknown:
        parser.error(f"unknown engines {unknown}; choose from {list(ENGINES)}")
    try:
        batches = tuple(int(b) for b in args.batches.split(",") if b)
    except ValueError:
        parser.error("--batches must be whole numbers of ms")
    if not batches or any(b <= 0 or b % 10 for b in batches) or args.passes < 1:
        parser.error("--batches must be positive multiples of 10 ms, --passes >= 1")
    recordings = {
        name: read_pcm(args.audio_dir / name)
        for name in RECORDINGS
        if (args.audio_dir / name).is_file()
    }
    if not recordings:
        parser.error(f"no recordings in {args.audio_dir}")
    result: dict[str, Any] = {"loadavg_before": _loadavg()}
    for name in engines:
        result[name] = trio.run(measure, name, recordings, batches, args.passes)
    result["loadavg_after"] = _loadavg()
    if args.json:
        print(json.dumps(result))
    else:
        for name in engines:
            for b, row in result[name]["batch_ms"].items():
                print(f"{name:15} batch {b:>4} ms: {row}")
        print(f"load average {result['loadavg_before']} -> {result['loadavg_after']}")
    return 0


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return f"{os.getloadavg()}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
