"""The user side of a scenario as audio: sources loaded (resampled to 16 kHz) or synthesised,
placed on the input timeline, and the ground truth of every item — its speech spans and word
times, from the recording's own labels where they exist. Pure numpy, no trio."""

from __future__ import annotations

import json
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bargein.dsp import Resampler, float32_to_pcm16, pcm16_to_float32, resample
from bargein.research.scenario import AudioItem, Scenario, ScenarioError
from bargein.runtime.messages import SUPPORTED_RATES, Int16Array
from bargein.testing.audio import shared_audio_dir
from bargein.wavio import AudioFileError, read_wav

RATE = 16000
_FRAME = RATE // 100  # 10 ms energy frames for the fallback truth rule
ENERGY_RULE = "first and last 10 ms frame within 30 dB of the clip's peak (and above -50 dBFS)"

Span = tuple[float, float]
Word = tuple[float, float, str]  # start, end, text


@dataclass(frozen=True, slots=True)
class Truth:
    """An item's ground truth on the input timeline (seconds). `onset`/`offset` bound its
    speech; `spans` are the speech stretches inside; `words` the timed words the scripted
    recogniser will hear; `source` says where the times came from."""

    label: str
    kind: str
    onset: float
    offset: float
    expect: str = "any"
    spans: tuple[Span, ...] = ()
    words: tuple[Word, ...] = ()
    source: str = "given"

    def shifted(self, dt: float) -> Truth:
        return Truth(
            self.label,
            self.kind,
            self.onset + dt,
            self.offset + dt,
            self.expect,
            tuple((a + dt, b + dt) for a, b in self.spans),
            tuple((a + dt, b + dt, w) for a, b, w in self.words),
            self.source,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "kind": self.kind,
            "onset": round(self.onset, 4),
            "offset": round(self.offset, 4),
            "expect": self.expect,
            "truth_source": self.source,
        }


def find_audio(name: str, base_dir: Path | None, what: str = "audio file") -> Path:
    """A file beside the scenario, else in `$BARGEIN_AUDIO_DIR` if set, else the shared
    recordings (`what` names the key in the error: "words_json file", "rttm file")."""
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
    raise ScenarioError(f"{what} {name!r} not found (looked in {looked})")


def to_rate(pcm: Int16Array, rate: int, path: Path) -> Int16Array:
    """`pcm` at 16 kHz: resampled with `bargein.dsp` (group delay removed, so label times
    still line up) when the file is at another supported rate."""
    if rate == RATE:
        return pcm
    if rate not in SUPPORTED_RATES:
        raise ScenarioError(f"{path}: {rate} Hz is not a supported rate {sorted(SUPPORTED_RATES)}")
    out = resample(pcm16_to_float32(pcm), rate, RATE)
    lag = round(Resampler(rate, RATE).delay_samples)
    n = round(len(pcm) * RATE / rate)
    return float32_to_pcm16(out[lag : lag + n])


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
    return to_rate(np.asarray(pcm, dtype=np.int16).copy(), rate, path)


def noise_burst(
    duration_s: float, level_dbfs: float, seed: int, shape: str = "cough"
) -> Int16Array:
    """Seeded synthetic noise, low-passed (cheap one-pole), scaled so its RMS is `level_dbfs`.
    `cough`: a 10 ms attack and an exponential decay over the burst; `clicks`: keyboard typing,
    a 5 ms click every 90-150 ms; `steady`: constant (a fan, a tap), 20 ms fades at the ends."""
    n = max(1, int(duration_s * RATE))
    rng = np.random.default_rng(seed)
    white = rng.standard_normal(n)
    shaped = np.empty(n)
    acc = 0.0
    for i in range(n):  # bursts are short; a loop keeps this exact and dependency-free
        acc = 0.7 * acc + 0.3 * white[i]
        shaped[i] = acc
    t = np.arange(n) / RATE
    if shape == "clicks":
        envelope = np.zeros(n)
        at = 0.0
        while at < duration_s:
            dt = t - at
            envelope += np.where(dt >= 0, np.exp(-np.maximum(dt, 0) / 0.0015), 0) * (dt < 0.005)
            at += float(rng.uniform(0.09, 0.15))
    elif shape == "steady":
        envelope = np.minimum(1.0, np.minimum(t, duration_s - t) / 0.02).clip(0, 1)
    else:
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
        pcm = noise_burst(item.duration_s, item.level_dbfs, item.seed, item.shape)
    else:
        assert item.file is not None
        pcm = read_channel(find_audio(item.file, base_dir), item.channel)
        start = int(item.trim_start_s * RATE)
        end = len(pcm) if item.trim_end_s is None else int(item.trim_end_s * RATE)
        length = f"{item.file} ({len(pcm) / RATE:.2f} s)"
        if start >= len(pcm):
            raise ScenarioError(f"trim_start_s is beyond the end of {length}")
        if end > len(pcm) + RATE // 20:  # lengths are quoted to 0.1 s; more is a mistaken cut
            raise ScenarioError(f"trim_end_s {item.trim_end_s} is beyond the end of {length}")
        pcm = pcm[start:end]
    if item.gain != 1.0:
        pcm = np.clip(np.round(pcm.astype(np.float64) * item.gain), -32768, 32767)
    return pcm.astype(np.int16)


def speech_region(pcm: Int16Array) -> tuple[float, float] | None:
    """The fallback truth rule (`ENERGY_RULE`); its error against labels is in docs/research.md."""
    n = len(pcm) // _FRAME
    if n == 0:
        return None
    frames = pcm[: n * _FRAME].astype(np.float64).reshape(n, _FRAME)
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-9) - 20 * np.log10(32768)
    loud = np.nonzero(level >= max(float(level.max()) - 30, -50.0))[0]
    if len(loud) == 0:
        return None
    return float(loud[0] * _FRAME / RATE), float((loud[-1] + 1) * _FRAME / RATE)


# -- the recordings' own labels ------------------------------------------------------------------


def read_rttm(path: Path, speakers: tuple[str, ...] | None) -> list[Span]:
    """Speaker turns (file times) of an RTTM file, for `speakers` (None: every speaker)."""
    spans: list[Span] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        f = line.split()
        if not f or f[0] != "SPEAKER":
            continue
        try:
            start, dur, who = float(f[3]), float(f[4]), f[7]
        except (IndexError, ValueError):
            raise ScenarioError(f"{path}:{n}: not an RTTM SPEAKER line") from None
        if speakers is None or who in speakers:
            spans.append((start, start + dur))
    if speakers is not None and not spans:
        raise ScenarioError(f"{path}: no turns for speaker(s) {list(speakers)}")
    return sorted(spans)


def read_word_json(path: Path) -> list[Word]:
    """Word times (file times) of a `{"words": [{"word", "start_sec", "end_sec"}]}` file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        words = [(float(w["start_sec"]), float(w["end_sec"]), str(w["word"])) for w in raw["words"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ScenarioError(f"{path}: not a word-time JSON file ({exc})") from None
    return sorted(words)


def _merge(spans: list[Span]) -> list[Span]:
    out: list[Span] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _clip(spans: list[Span], lo: float, hi: float) -> list[Span]:
    """Spans inside the trimmed window [lo, hi), relative to lo."""
    return [(max(a, lo) - lo, min(b, hi) - lo) for a, b in spans if min(b, hi) > max(a, lo)]


def labelled(
    item: AudioItem, base_dir: Path | None, length_s: float
) -> tuple[str, list[Span], list[Word]] | None:
    """Spans and words from the recording's labels (item-relative), or None without labels:
    `words_json` / `rttm` when given, else `<file stem>.json` / `<file stem>.rttm` beside it."""
    if item.source != "file" or item.file is None:
        return None
    audio = find_audio(item.file, base_dir)
    lo = item.trim_start_s
    hi = lo + length_s
    json_path = rttm_path = None
    if item.words_json:
        json_path = find_audio(item.words_json, base_dir, "words_json file")
    if item.rttm:
        rttm_path = find_audio(item.rttm, base_dir, "rttm file")
    if json_path is None and rttm_path is None:
        json_guess, rttm_guess = audio.with_suffix(".json"), audio.with_suffix(".rttm")
        json_path = json_guess if json_guess.is_file() else None
        rttm_path = rttm_guess if rttm_guess.is_file() and json_path is None else None
    if json_path is not None:
        words = [
            (a - lo, b - lo, w) for a, b, w in read_word_json(json_path) if lo <= a and b <= hi
        ]
        if not words:
            raise ScenarioError(f"no labelled words of {json_path} lie wholly inside the clip")
        return f"labels:{json_path.name}", [(words[0][0], words[-1][1])], words
    if rttm_path is not None:
        spans = _clip(_merge(read_rttm(rttm_path, item.rttm_speakers)), lo, hi)
        if not spans:
            raise ScenarioError(f"no labelled turn of {rttm_path} in the clip")
        return f"labels:{rttm_path.name}", spans, []
    return None


def timed_words(texts: tuple[str, ...], spans: list[Span]) -> list[Word]:
    """The scripted transcript laid over the speech: with one text per span, text i fills span
    i; otherwise all words share the spans, evenly by duration."""
    if len(texts) == len(spans) and len(spans) > 1:
        return [
            w for text, span in zip(texts, spans, strict=True) for w in timed_words((text,), [span])
        ]
    tokens = " ".join(texts).split()
    total = sum(b - a for a, b in spans)
    if not tokens or total <= 0:
        return []
    out: list[Word] = []
    step = total / len(tokens)
    for k, token in enumerate(tokens):
        out.append((_along(spans, k * step), _along(spans, (k + 1) * step), token))
    return out


def _along(spans: list[Span], d: float) -> float:
    """The timeline point `d` seconds of speech into `spans`."""
    for a, b in spans:
        if d <= b - a + 1e-12:
            return a + d
        d -= b - a
    return spans[-1][1]


def item_truth(item: AudioItem, pcm: Int16Array, base_dir: Path | None) -> Truth:
    """Precedence: `speech` given in the scenario, then the recording's labels, then (synthetic
    noise) the burst itself, then the energy rule."""
    words: list[Word] = []
    if item.speech is not None:
        source, spans = "given", list(item.speech)
        if spans[-1][1] > len(pcm) / RATE + 1e-6:
            raise ScenarioError(
                f"speech ends at {spans[-1][1]} s, after the clip's end ({len(pcm) / RATE:.2f} s)"
            )
    elif (found := labelled(item, base_dir, len(pcm) / RATE)) is not None:
        source, spans, words = found
    elif item.source == "noise":
        source, spans = "synthetic", [(0.0, len(pcm) / RATE)]
    else:
        region = speech_region(pcm)
        if region is None:
            raise ScenarioError("the audio is silent; give speech = [s, e]")
        source, spans = "energy", [region]
    if item.transcripts is not None or not words:
        words = timed_words(item.transcripts or (), spans)
    at = item.at_s
    return Truth(
        item.label,
        item.kind,
        at + spans[0][0],
        at + spans[-1][1],
        item.expect,
        tuple((at + a, at + b) for a, b in spans),
        tuple((at + a, at + b, w) for a, b, w in words),
        source,
    )


def item_audio(scenario: Scenario, item: AudioItem) -> tuple[Int16Array, Truth]:
    """The item's samples and truth; an error names the scenario file and the item."""
    try:
        pcm = item_pcm(item, scenario.base_dir)
        return pcm, item_truth(item, pcm, scenario.base_dir)
    except ScenarioError as exc:
        where = scenario.path if scenario.path is not None else scenario.name
        raise ScenarioError(f"{where}: [[audio]] {item.label!r}: {exc}") from None


def build_input(scenario: Scenario) -> tuple[Int16Array, list[Truth]]:
    """The microphone signal without echo, and every item's truth, in timeline order."""
    parts: list[tuple[int, Int16Array]] = []
    truths: list[Truth] = []
    end = 0.0
    for item in scenario.items:
        if item.source == "echo":
            assert item.until_s is not None
            window = (item.at_s, item.until_s)
            truths.append(
                Truth(item.label, item.kind, *window, item.expect, (window,), (), "echo window")
            )
            end = max(end, item.until_s)
            continue
        pcm, truth = item_audio(scenario, item)
        truths.append(truth)
        parts.append((round(item.at_s * RATE), pcm))
        end = max(end, item.at_s + len(pcm) / RATE)
    length = scenario.duration_s if scenario.duration_s is not None else end + scenario.tail_s
    out = np.zeros(round(length * RATE), np.int32)
    for at, pcm in parts:
        n = max(0, min(len(pcm), len(out) - at))
        out[at : at + n] += pcm[:n]
    truths.sort(key=lambda t: (t.onset, t.label))
    return np.clip(out, -32768, 32767).astype(np.int16), truths
