"""Audio helpers for tests, benchmarks and research: the shared recordings, silence, mixing,
and feeding a session as a live microphone would."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import trio

from bargein.runtime.messages import Int16Array
from bargein.wavio import read_wav


def shared_audio_dir() -> Path:
    """`$BARGEIN_AUDIO_DIR`, else the first `shared/audio` found beside or above the cwd or
    this package (the repository is checked out next to `shared/`)."""
    env = os.environ.get("BARGEIN_AUDIO_DIR")
    if env:
        return Path(env)
    for base in (Path.cwd(), Path(__file__).resolve()):
        for parent in (base, *base.parents):
            candidate = parent / "shared" / "audio"
            if candidate.is_dir():
                return candidate
    raise FileNotFoundError("shared/audio not found; set BARGEIN_AUDIO_DIR")


def load(name: str) -> Int16Array:
    """A shared recording as 16 kHz mono PCM16."""
    pcm, rate = read_wav(shared_audio_dir() / name)
    if rate != 16000:
        raise ValueError(f"{name}: expected 16 kHz, got {rate}")
    return pcm


def silence(ms: float, rate: int = 16000) -> Int16Array:
    return np.zeros(int(rate * ms / 1000), np.int16)


def place(length_ms: float, *parts: tuple[float, Int16Array], rate: int = 16000) -> Int16Array:
    """Mix `(start_ms, pcm)` parts onto a silent timeline of `length_ms` (clipped)."""
    out = np.zeros(int(rate * length_ms / 1000), np.int32)
    for start_ms, pcm in parts:
        at = int(rate * start_ms / 1000)
        n = max(0, min(len(pcm), len(out) - at))
        out[at : at + n] += pcm[:n]
    return np.clip(out, -32768, 32767).astype(np.int16)


async def feed_live(
    push: Callable[[Int16Array], object], pcm: Int16Array, rate: int = 16000, chunk_ms: int = 20
) -> None:
    """Push `pcm` in `chunk_ms` chunks at real-time pace on the trio clock."""
    step = rate * chunk_ms // 1000
    start = trio.current_time()
    for i, at in enumerate(range(0, len(pcm), step)):
        # Like a microphone, a chunk is delivered once all of it has been captured.
        await trio.sleep_until(start + (i + 1) * chunk_ms / 1000)
        push(pcm[at : at + step])
