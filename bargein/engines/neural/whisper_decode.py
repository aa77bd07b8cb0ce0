"""Whisper tiny.en decoding on CTranslate2, in stages small enough to stop between them.

Whisper's encoder is trained on 30 s windows and faster-whisper always pads to one, so a 2 s
utterance costs as much as 30 s (~0.3 s of encoder on 2 cores here). The encoder accepts shorter
windows, and its cost is about linear in the window: a utterance is therefore decoded in a window
fitted to it (the audio + `PAD_S`, at least `MIN_WINDOW_S`), which cut the encoder to 0.03–0.09 s
on the shared recordings with the same transcripts. Below ~8 s the decoder started to loop
("go forward 10 meters. Go forward 10 meters. ..." on a 4 s window), hence the 10 s floor; the
generation length is also capped by the audio's length as a second guard against loops.

Each stage is one plain function meant for one `run_cpu` hop: `encode` (log-mel features and the
encoder), `generate` (greedy decoding) and `align` (word timestamps from the cross-attention
heads). A caller awaiting them one by one can be cancelled between stages, so a decode that is no
longer wanted stops after at most one stage. Utterances longer than a window are cut at their
quietest 20 ms frame and decoded window by window (`transcribe_sync`).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from bargein.engines.base import Hypothesis, WordConfidence
from bargein.runtime.messages import Int16Array

__all__ = [
    "ONSET_FRAMES",
    "Encoded",
    "Transcription",
    "WhisperDecoder",
    "WordTime",
    "collapse_repeats",
    "fix_first_start",
    "is_voiced",
    "voiced_onset",
]

SAMPLE_RATE = 16_000
HOP = 160  # samples per mel frame (10 ms)
MIN_WINDOW_S = 10.0
PAD_S = 2.0
MAX_WINDOW_S = 30.0
MAX_AUDIO_S = 28.0  # longest audio one window takes (leaves room for PAD_S)
# Generation cap: tokens allowed per second of audio, plus a constant (fast speech is ~5 tokens/s).
TOKENS_PER_S = 7
TOKENS_BASE = 10
ONSET_FRAMES = 3  # voiced 20 ms frames in a row that mark where speech starts
# faster-whisper's no-speech rule: drop the text if both hold.
NO_SPEECH_PROB = 0.6
WHISPER_MEASURE = "whisper.hypothesis"  # `Hypothesis.measure` of `generate_scored`'s confidence
LOW_LOGPROB = -1.0


@dataclass(frozen=True, slots=True)
class WordTime:
    """A recognized word and its time in seconds from the start of the decoded audio."""

    text: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    words: tuple[WordTime, ...] = ()
    confidence: float = 1.0  # `WhisperDecoder.generate_scored`'s, of the whole text

    def hypothesis(self) -> Hypothesis:
        """The text with each word given the transcription's confidence (Whisper scores the
        hypothesis, not its words: word probabilities need the alignment pass)."""
        words = tuple(WordConfidence(w, self.confidence) for w in self.text.split())
        return Hypothesis(self.text, words, WHISPER_MEASURE)


@dataclass(frozen=True, slots=True)
class Encoded:
    output: Any  # ctranslate2.StorageView of the encoder
    frames: int  # mel frames of real audio (not padding)
    audio_s: float


class WhisperDecoder:
    """Stateless stages over one shared `WhisperModel`; safe to call from several threads."""

    def __init__(self, model: Any) -> None:
        from faster_whisper.tokenizer import Tokenizer

        self.model = model
        self.tokenizer = Tokenizer(model.hf_tokenizer, False, task="transcribe", language="en")
        self._prompt = [*self.tokenizer.sot_sequence, self.tokenizer.no_timestamps]

    def encode(self, audio: Int16Array) -> Encoded:
        """Features and encoder over a window fitted to `audio` (at most MAX_AUDIO_S of it)."""
        audio_s = len(audio) / SAMPLE_RATE
        if audio_s > MAX_AUDIO_S:
            raise ValueError(f"one window takes at most {MAX_AUDIO_S} s, got {audio_s:.1f} s")
        window_s = min(MAX_WINDOW_S, max(MIN_WINDOW_S, math.ceil(audio_s + PAD_S)))
        n_window = int(window_s * SAMPLE_RATE)
        # Zero padding before the log-mel, as Whisper's own 30 s padding does.
        wave = np.zeros(n_window, np.float32)
        wave[: len(audio)] = audio.astype(np.float32) / 32768.0
        features = self.model.feature_extractor(wave, padding=0)[:, : n_window // HOP]
        return Encoded(self.model.encode(features), len(audio) // HOP, audio_s)

    def generate(self, encoded: Encoded) -> list[int]:
        """Greedy decoding; the text tokens, or [] when Whisper judges it no speech."""
        return self.generate_scored(encoded)[0]

    def generate_scored(self, encoded: Encoded) -> tuple[list[int], float]:
        """`generate`'s tokens and Whisper's confidence in them, 0..1: the mean token
        probability (CTranslate2's score is the length-normalized log probability) times the
        probability that the window holds speech (1 - no_speech_prob). It is low wherever
        Whisper has heard little, right or wrong: on the shared clips' hypotheses of their first
        0.9 s, real content words 0.03-0.47 ("8" after 0.2 s: 0.03), misheard ones 0.09-0.28
        (docs/engines.md, "Word confidence")."""
        max_length = min(224, TOKENS_BASE + math.ceil(TOKENS_PER_S * encoded.audio_s))
        result = self.model.model.generate(
            encoded.output,
            [self._prompt],
            beam_size=1,
            max_length=max_length,
            return_scores=True,
            return_no_speech_prob=True,
        )[0]
        tokens = [t for t in result.sequences_ids[0] if t < self.tokenizer.eot]
        avg_logprob = result.scores[0] / (len(tokens) + 1)
        if result.no_speech_prob > NO_SPEECH_PROB and avg_logprob < LOW_LOGPROB:
            return [], 0.0
        confidence = math.exp(min(0.0, result.scores[0])) * (1.0 - result.no_speech_prob)
        return tokens, min(1.0, max(0.0, confidence))

    def text(self, tokens: list[int]) -> str:
        return collapse_repeats(" ".join(self.tokenizer.decode(tokens).split()))

    def align(self, encoded: Encoded, tokens: list[int]) -> tuple[WordTime, ...]:
        """Word times from Whisper's alignment heads (faster-whisper's own method)."""
        if not tokens:
            return ()
        found = self.model.find_alignment(
            self.tokenizer, [tokens], encoded.output, max(1, encoded.frames)
        )
        merged: list[WordTime] = []
        for w in found[0] if found else []:
            text = w["word"].strip()
            if not text:
                continue
            if merged and not any(c.isalnum() for c in text):
                # Punctuation comes as its own "word" ("Mr", "."): it belongs to the word before.
                last = merged[-1]
                merged[-1] = WordTime(last.text + text, last.start, round(float(w["end"]), 3))
                continue
            merged.append(WordTime(text, round(float(w["start"]), 3), round(float(w["end"]), 3)))
        return tuple(merged)

    def transcribe_sync(self, audio: Int16Array, words: bool = True) -> Transcription:
        """All stages at once (blocking), window by window for long audio."""
        texts: list[str] = []
        marks: list[WordTime] = []
        confidence = 1.0
        for offset, piece in split_long(audio):
            encoded = self.encode(piece)
            tokens, scored = self.generate_scored(encoded)
            if not tokens:
                continue
            confidence = min(confidence, scored)
            texts.append(self.text(tokens))
            if words:
                t0 = offset / SAMPLE_RATE
                aligned = fix_first_start(self.align(encoded, tokens), voiced_onset(piece))
                marks.extend(WordTime(w.text, w.start + t0, w.end + t0) for w in aligned)
        return Transcription(" ".join(t for t in texts if t), tuple(marks), confidence)


MIN_LEVEL_RMS = 10 ** (-55 / 20) * 32768  # the session VAD's default min_level_dbfs


def is_voiced(vad: Any, frame: Int16Array) -> bool:
    """webrtcvad's verdict on a 20 ms frame, and loud enough, as the session's VAD judges it."""
    loud = float(np.sqrt(np.mean(frame.astype(np.float32) ** 2))) >= MIN_LEVEL_RMS
    return loud and bool(vad.is_speech(frame.tobytes(), SAMPLE_RATE))


def voiced_onset(audio: Int16Array, aggressiveness: int = 2) -> float | None:
    """Start (s) of the first run of ONSET_FRAMES voiced 20 ms frames by webrtcvad (a single
    voiced frame is often a click or breath)."""
    import webrtcvad

    vad = webrtcvad.Vad(aggressiveness)
    frame = SAMPLE_RATE // 50
    run = 0
    for i in range(0, len(audio) - frame + 1, frame):
        run = run + 1 if is_voiced(vad, audio[i : i + frame]) else 0
        if run == ONSET_FRAMES:
            return (i + frame - ONSET_FRAMES * frame) / SAMPLE_RATE
    return None


def fix_first_start(words: tuple[WordTime, ...], onset: float | None) -> tuple[WordTime, ...]:
    """Whisper's alignment starts the first word at 0 whatever the leading silence; move it to
    the first voiced frame (never past the word's end)."""
    if not words or onset is None or words[0].start >= onset:
        return words
    first = words[0]
    return (WordTime(first.text, min(onset, first.end), first.end), *words[1:])


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def _key(sentence: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", sentence.lower()))


def collapse_repeats(text: str) -> str:
    """Drop Whisper's decoding loops: a sentence repeating the one before it, and a last
    fragment that only restarts the one before it ("Go forward. Go forward. Go for" -> "Go
    forward."). On short windows tiny.en sometimes loops until the length cap."""
    sentences = [s for s in _SENTENCE_END.split(text) if s]
    kept: list[str] = []
    for i, sentence in enumerate(sentences):
        key = _key(sentence)
        if kept and key:
            previous = _key(kept[-1])
            last = i == len(sentences) - 1
            if key == previous or (last and previous.startswith(key)):
                continue
        kept.append(sentence)
    return " ".join(kept)


def split_long(audio: Int16Array) -> list[tuple[int, Int16Array]]:
    """(offset, piece) pieces of at most MAX_AUDIO_S, cut at the quietest 20 ms frame of the
    last 8 s before each limit (a pause, with luck, rather than mid-word)."""
    limit = int(MAX_AUDIO_S * SAMPLE_RATE)
    frame = SAMPLE_RATE // 50
    pieces: list[tuple[int, Int16Array]] = []
    start = 0
    while len(audio) - start > limit:
        lo = start + limit - 8 * SAMPLE_RATE
        span = audio[lo : start + limit].astype(np.float32)
        energy = (span[: len(span) // frame * frame].reshape(-1, frame) ** 2).sum(axis=1)
        cut = lo + int(np.argmin(energy)) * frame + frame // 2
        pieces.append((start, audio[start:cut]))
        start = cut
    pieces.append((start, audio[start:]))
    return pieces
