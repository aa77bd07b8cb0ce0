"""WAV files in and out: any common width and channel count in, PCM16 mono out."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from bargein.runtime.messages import Int16Array


class AudioFileError(ValueError):
    """The file is not audio we can read; the message says why."""


def read_wav(path: str | Path) -> tuple[Int16Array, int]:
    """Return (mono PCM16 samples, sample rate). Channels are averaged; 8/16/24/32-bit integer
    PCM is converted. A `.raw`/`.pcm` file is read as headerless s16le mono at 16 kHz."""
    path = Path(path)
    if path.suffix.lower() in (".raw", ".pcm"):
        data = path.read_bytes()
        if not data:
            raise AudioFileError(f"{path}: no audio")
        if len(data) % 2:
            raise AudioFileError(f"{path}: raw PCM16 must have an even number of bytes")
        return np.frombuffer(data, "<i2").astype(np.int16), 16000
    try:
        with wave.open(str(path), "rb") as w:
            channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
            raw = w.readframes(w.getnframes())
    except FileNotFoundError:
        raise AudioFileError(f"{path}: no such file") from None
    except (wave.Error, EOFError) as exc:
        reason = str(exc) or "truncated or not a RIFF/WAVE file"
        raise AudioFileError(f"{path}: not a PCM WAV file ({reason})") from None
    if width == 1:
        samples = (np.frombuffer(raw, np.uint8).astype(np.int32) - 128) << 8
    elif width == 2:
        samples = np.frombuffer(raw, "<i2").astype(np.int32)
    elif width == 3:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        samples = ((b[:, 0] << 8) | (b[:, 1] << 16) | (b[:, 2] << 24)) >> 16
    elif width == 4:
        samples = np.frombuffer(raw, "<i4").astype(np.int64) >> 16
    else:
        raise AudioFileError(f"{path}: unsupported sample width {width * 8} bits")
    if channels > 1:
        samples = samples[: len(samples) // channels * channels].reshape(-1, channels).mean(axis=1)
    if rate <= 0 or len(samples) == 0:
        raise AudioFileError(f"{path}: no audio")
    return np.clip(np.round(samples), -32768, 32767).astype(np.int16), rate


def write_wav(path: str | Path, pcm: Int16Array, rate: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.astype("<i2").tobytes())
