"""The user side of a scenario as audio: sources loaded or synthesised, placed on the input
timeline, and the ground-truth speech region of each item. Pure numpy, no trio."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bargein.research.scenario import AudioItem, Scenario, ScenarioError
from bargein.runtime.messages import Int16Array
from bargein.testing.audio import shared_audio_dir
from bargein.wavio import AudioFileError, read_wav

RATE = 16000
_FRAME = RATE // 100  # 10 ms energy frames for the truth regions


@dataclass(frozen=True, slots=True)
class Truth:
    """An item's ground truth on the input timeline (seconds)."""

    label: str
    kind: str
    onset: float
    offset: float
    expect: str = "any"

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "kind": self.kind,
            "onset": round(self.onset, 4),
            "offset": round(self.offset, 4),
            "expect": self.expect,
        }


def find_audio(name: str, base_dir: Path | None) -> Path:
    """A file beside the scenario, else in `$BARGEIN_AUDIO_DIR` / the shared recordings."""
    candidates: list[Path] = []
    if Path(name).is_absolute():
        candidates.append(Path(name))
    else:
        if base_dir is not None:
            candidates.append(base_dir / name)
        try:
            candidates.append(shared_audio_dir() / name)
        except FileNotFoundError:
            pass
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(str(p.parent) for p in candidates) or "nowhere"
    raise ScenarioError(f"audio file {name!r} not found (looked in {looked})")


def read_channel(path: Path, channel: int | None) -> Int16Array:
    """16 kHz PCM16: one channel of a multi-channel WAV, or the mono mix (`read_wav`)."""
    try:
        if channel is None:
            pcm, rate = read_wav(path)
        else:
            with wave.open(str(path), "rb") as w:
                channels, width, rate = w.getnchannels(), w.getsampwidth(), w.getframerate()
                raw = w.readframes(w.getnframes())
            if width != 2:
                raise ScenarioError(f"{path}: channel selection needs 16-bit PCM")
            if channel >= channels:
                raise ScenarioError(f"{path}: has {channels} channel(s), no channel {channel}")
            data = np.frombuffer(raw, "<i2")
            pcm = data[: len(data) // channels * channels].reshape(-1, channels)[:, channel]
    except (AudioFileError, wave.Error, EOFError) as exc:
        raise ScenarioError(str(exc)) from None
    if rate != RATE:
        raise ScenarioError(f"{path}: expected {RATE} Hz audio, got {rate}")
    return np.asarray(pcm, dtype=np.int16).copy()


def noise_burst(duration_s: float, level_dbfs: float, seed: int) -> Int16Array:
    """A cough-like burst: seeded noise, low-passed (cheap one-pole), with a fast attack and a
    decaying tail, scaled so its RMS is `level_dbfs`."""
    n = max(1, int(duration_s * RATE))
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n)
    shaped = np.empty(n)
    acc = 0.0
    for i in range(n):  # bursts are short; a loop keeps this exact and dependency-free
        acc = 0.7 * acc + 0.3 * white[i]
        shaped[i] = acc
    t = np.arange(n) / RATE
    envelope = np.minimum(1.0, t / 0.01) * np.exp(-t / max(duration_s / 3, 1e-3))
    x = shaped * envelope
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    x *= 32768 * 10 ** (level_dbfs / 20) / rms
    out: Int16Array = np.clip(np.round(x), -32768, 32767).astype(np.int16)
    return out


def item_pcm(item: AudioItem, base_dir: Path | None) -> Int16Array:
    """The item's samples before placing (empty for an echo, which the harness mixes live)."""
    if item.source == "echo":
        return np.zeros(0, np.int16)
    if item.source == "noise":
        pcm = noise_burst(item.duration_s, item.level_dbfs, item.seed)
    else:
        assert item.file is not None
        pcm = read_channel(find_audio(item.file, base_dir), item.channel)
        start = int(item.trim_start_s * RATE)
        end = len(pcm) if item.trim_end_s is None else int(item.trim_end_s * RATE)
        if start >= len(pcm):
            raise ScenarioError(f"{item.label!r}: trim_start_s is beyond the end of {item.file}")
        pcm = pcm[start:end]
    if item.gain != 1.0:
        pcm = np.clip(np.round(pcm.astype(np.float64) * item.gain), -32768, 32767)
    return pcm.astype(np.int16)


def speech_region(pcm: Int16Array) -> tuple[float, float] | None:
    """First and last 10 ms frame within 30 dB of the loudest (and above -50 dBFS)."""
    n = len(pcm) // _FRAME
    if n == 0:
        return None
    frames = pcm[: n * _FRAME].astype(np.float64).reshape(n, _FRAME)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9) - 20 * np.log10(32768)
    loud = np.nonzero(level >= max(float(level.max()) - 30, -50.0))[0]
    if len(loud) == 0:
        return None
    return float(loud[0] * _FRAME / RATE), float((loud[-1] + 1) * _FRAME / RATE)


def build_input(scenario: Scenario) -> tuple[Int16Array, list[Truth]]:
    """The microphone signal without echo, and every item's truth, in timeline order."""
    parts: list[tuple[int, Int16Array]] = []
    truths: list[Truth] = []
    end = 0.0
    for item in scenario.items:
        if item.source == "echo":
            assert item.until_s is not None
            truths.append(Truth(item.label, item.kind, item.at_s, item.until_s, item.expect))
            end = max(end, item.until_s)
            continue
        pcm = item_pcm(item, scenario.base_dir)
        region = item.speech or speech_region(pcm)
        if region is None:
            raise ScenarioError(f"{item.label!r}: the audio is silent; give speech = [s, e]")
        truths.append(
            Truth(item.label, item.kind, item.at_s + region[0], item.at_s + region[1], item.expect)
        )
        parts.append((round(item.at_s * RATE), pcm))
        end = max(end, item.at_s + len(pcm) / RATE)
    length = scenario.duration_s if scenario.duration_s is not None else end + scenario.tail_s
    out = np.zeros(round(length * RATE), np.int32)
    for at, pcm in parts:
        n = max(0, min(len(pcm), len(out) - at))
        out[at : at + n] += pcm[:n]
    truths.sort(key=lambda t: (t.onset, t.label))
    return np.clip(out, -32768, 32767).astype(np.int16), truths
