"""A neural voice: Piper's en_US-joe-medium (VITS, ONNX, 22.05 kHz) on onnxruntime.

Our own small inference path (the `piper-tts` package is GPL-3.0 and is not used):

1. **Phonemes** from the espeak-ng library the embedded TTS already loads (`espeakng_loader`),
   through `espeak_TextToPhonemes` in IPA mode with the voice named in the `.onnx.json`
   ("en-us"), under espeak's process-wide lock. Each whitespace token of the sentence is
   phonemized on its own, so we know which phonemes belong to which of *our* words; punctuation
   that ends a token (, . ! ? ; :) is kept as Piper's pause phoneme.
2. **Ids** as Piper builds them: `^`, then each phoneme followed by the pad `_`, words separated
   by a space, then `$`; unknown symbols are dropped.
3. **VITS** in onnxruntime with the config's noise scales and `length_scale / speed`.
4. **Word marks from the model's own durations.** The graph computes every id's duration in
   frames (256 samples) but outputs only audio; `onnx_graph.with_output` exposes that tensor, so
   a word's start is the sum of the durations before its first id: exact, not estimated (the
   audio is exactly sum(durations) × 256 samples). A voice without that tensor falls back to
   spreading the audio over the ids in proportion to their count (measured worse).

Streaming: per sentence, with the **first short phrase synthesized first**: the text up to the
first clause mark (, ; : —) if it comes within `first_phrase_words` words, else the first
`first_phrase_words` words of a sentence of at least twice that many. Its audio is sent before
the rest is synthesized (the egress buffer holds seconds, so there is no gap), which cuts the
time to first audio from a whole sentence's synthesis (RTF ~0.05–0.1 here) to the phrase's. The
audio is int16 at the voice's 22050 Hz; the tts actor resamples it to the session's output rate
with `bargein.dsp.Resampler`. Each call's compute goes through `run_cpu`.
"""

from __future__ import annotations

import ctypes
import json
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np
import trio

from bargein.engines.base import Sink, TtsChunk, WordStart
from bargein.engines.embedded.espeak_tts import _espeak
from bargein.engines.errors import TtsError
from bargein.engines.neural.models import DEFAULT_THREADS, piper_paths, piper_session
from bargein.runtime.compute import run_cpu
from bargein.runtime.messages import Int16Array

__all__ = ["PiperTts", "PiperVoice", "first_phrase", "phonemize_tokens"]

HOP = 256  # VITS frames: samples per duration unit
_IPA = 0x02  # espeakPHONEMES_IPA
_CHARS_UTF8 = 1
_PAUSES = ",.!?;:"
_CLAUSE = re.compile(r"[,;:—–]$")
# A fixed output gain (Piper's CLI normalizes each utterance to full scale, which would make the
# first phrase and the rest of a sentence differ in level): the voice peaks near 0.7 of full scale.
_GAIN = 32767.0


@dataclass(frozen=True, slots=True)
class PiperVoice:
    """The voice's config (`.onnx.json`): phoneme ids, scales, espeak voice, sample rate."""

    ids: dict[str, int]
    sample_rate: int
    espeak_voice: str
    noise_scale: float
    length_scale: float
    noise_w: float

    @classmethod
    def load(cls) -> PiperVoice:
        config = json.loads(piper_paths()[1].read_text(encoding="utf-8"))
        inference = config.get("inference", {})
        return cls(
            ids={k: int(v[0]) for k, v in config["phoneme_id_map"].items()},
            sample_rate=int(config["audio"]["sample_rate"]),
            espeak_voice=str(config.get("espeak", {}).get("voice", "en-us")),
            noise_scale=float(inference.get("noise_scale", 0.667)),
            length_scale=float(inference.get("length_scale", 1.0)),
            noise_w=float(inference.get("noise_w", 0.8)),
        )


def phonemize_tokens(tokens: list[str], voice: str) -> list[str]:
    """IPA phonemes of each token (espeak-ng, one process-wide instance, under its lock)."""
    espeak = _espeak()
    lib = espeak.lib
    lib.espeak_TextToPhonemes.argtypes = (
        ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int,
    )  # fmt: skip
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    out: list[str] = []
    with espeak.lock:
        if not espeak.set_voice(voice):
            raise TtsError(f"espeak-ng has no voice {voice!r} for the Piper phonemes")
        for token in tokens:
            buffer = ctypes.create_string_buffer(token.replace("\0", " ").encode("utf-8"))
            pointer = ctypes.c_char_p(ctypes.addressof(buffer))
            parts: list[str] = []
            while pointer.value:
                phonemes = lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _IPA)
                if phonemes:
                    parts.append(phonemes.decode("utf-8", "replace").strip())
            out.append(" ".join(p for p in parts if p))
    return out


def first_phrase(text: str, max_words: int) -> tuple[str, str]:
    """(first phrase, rest) as described in the module docstring; rest '' when not split."""
    tokens = text.split()
    if max_words <= 0 or len(tokens) < 2:
        return text, ""
    cut = None
    for i, token in enumerate(tokens[:max_words]):
        if _CLAUSE.search(token) and i < len(tokens) - 1:
            cut = i + 1
            break
    if cut is None and len(tokens) >= 2 * max_words:
        cut = max_words
    if cut is None:
        return text, ""
    head, rest = " ".join(tokens[:cut]), " ".join(tokens[cut:])
    if not _speakable(head) or not _speakable(rest):
        return text, ""  # each piece must have a word, or its tokens would get no marks
    return head, rest


def _speakable(text: str) -> bool:
    return any(c.isalnum() for c in text)


class PiperTts:
    """`TtsEngine` on the Piper joe voice. ``speed``: 0.5–2.0 (1 = the voice's own pace);
    ``first_phrase_words``: 0 disables the first-phrase split; ``end_pause_ms``: silence after
    each sentence (0–1000); ``chunk_ms``: size of the chunks streamed into `out`;
    ``threads``: onnxruntime intra-op threads (1–16, default 1: see models.py)."""

    name = "piper-joe-medium"

    def __init__(
        self,
        *,
        speed: float = 1.0,
        first_phrase_words: int = 4,
        end_pause_ms: int = 150,
        chunk_ms: int = 200,
        threads: int = DEFAULT_THREADS,
    ) -> None:
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not 0.5 <= speed <= 2:
            raise ValueError(f"speed must be a number in 0.5..2.0, got {speed!r}")
        if not isinstance(first_phrase_words, int) or not 0 <= first_phrase_words <= 50:
            raise ValueError(f"first_phrase_words must be 0..50, got {first_phrase_words!r}")
        if not isinstance(end_pause_ms, int) or not 0 <= end_pause_ms <= 1000:
            raise ValueError(f"end_pause_ms must be 0..1000, got {end_pause_ms!r}")
        if not isinstance(chunk_ms, int) or chunk_ms <= 0:
            raise ValueError(f"chunk_ms must be a positive integer, got {chunk_ms!r}")
        if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= 16:
            raise ValueError(f"threads must be an integer in 1..16, got {threads!r}")
        self.voice = PiperVoice.load()  # small JSON; the model loads on first use
        self.sample_rate: int = self.voice.sample_rate
        self.speed = float(speed)
        self.first_phrase_words = first_phrase_words
        self.end_pause = self.sample_rate * end_pause_ms // 1000
        self.threads = threads
        self._chunk = max(1, self.sample_rate * chunk_ms // 1000)

    def _session(self) -> tuple[Any, bool]:
        return piper_session(self.threads)

    async def warm(self) -> None:
        """Load the model now (once per process), off the loop."""
        await run_cpu(self.synthesize_sync, "Hello.")

    def ids(self, text: str) -> tuple[list[int], list[int | None]]:
        """Phoneme ids of `text`, and for each token of `text.split()` the index of its first
        id (None for a token that has no phoneme)."""
        tokens = text.split()
        ids_map = self.voice.ids
        pad, space = ids_map["_"], ids_map.get(" ")
        ids = [ids_map["^"], pad]
        firsts: list[int | None] = []
        for k, (token, phonemes) in enumerate(
            zip(tokens, phonemize_tokens(tokens, self.voice.espeak_voice), strict=True)
        ):
            symbols = [c for c in unicodedata.normalize("NFD", phonemes) if c in ids_map]
            ending = token.rstrip("\"')]»”’")[-1:]
            pause = [ending] if ending and ending in _PAUSES and ending in ids_map else []
            if not symbols:
                # Unspoken ("—", "..."): its pause rides on the word before; no mark of its own.
                if pause and len(ids) > 2:
                    ids += [ids_map[pause[0]], pad]
                firsts.append(None)
                continue
            symbols += pause
            if k and space is not None and len(ids) > 2:
                ids += [space, pad]
            firsts.append(len(ids))
            for symbol in symbols:
                ids += [ids_map[symbol], pad]
        ids.append(ids_map["$"])
        return ids, firsts

    def synthesize_sync(self, text: str) -> tuple[Int16Array, tuple[WordStart, ...]]:
        """One piece of text: its audio and word marks (blocking)."""
        tokens = text.split()
        if not tokens:
            return np.zeros(0, np.int16), ()
        ids, firsts = self.ids(text)
        if all(f is None for f in firsts):
            return np.zeros(0, np.int16), ()  # nothing speakable ("...", "?")
        session, has_durations = self._session()
        v = self.voice
        scales = np.array([v.noise_scale, v.length_scale / self.speed, v.noise_w], np.float32)
        feeds = {
            "input": np.array([ids], np.int64),
            "input_lengths": np.array([len(ids)], np.int64),
            "scales": scales,
        }
        try:
            outputs = session.run(None, feeds)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise TtsError(f"Piper synthesis failed: {exc}") from exc
        audio = np.asarray(outputs[0], np.float32).reshape(-1)
        pcm = np.clip(audio * _GAIN, -32768, 32767).astype(np.int16)
        if has_durations and len(outputs) > 1:
            frames = np.asarray(outputs[1], np.float64).reshape(-1)
            starts = np.concatenate([[0.0], np.cumsum(frames)]) * HOP
        else:
            starts = np.linspace(0.0, len(pcm), len(ids) + 1)
        words: list[WordStart] = []
        previous = 0
        for token, first in zip(tokens, firsts, strict=True):
            sample = previous if first is None else int(starts[first])
            previous = max(previous, min(sample, max(len(pcm) - 1, 0)))
            words.append(WordStart(token, previous))
        return pcm, tuple(words)

    async def synthesize(self, text: str, out: Sink[TtsChunk]) -> None:
        if not text.strip():
            await trio.lowlevel.checkpoint()
            return
        head, rest = first_phrase(" ".join(text.split()), self.first_phrase_words)
        offset = 0
        for i, piece in enumerate((head, rest)):
            if not piece:
                continue
            pcm, words = await run_cpu(self.synthesize_sync, piece)
            if not len(pcm):
                continue
            if i == 1 or not rest:
                pcm = np.concatenate([pcm, np.zeros(self.end_pause, np.int16)])
            marks = [WordStart(w.text, w.sample + offset) for w in words]
            for start in range(0, len(pcm), self._chunk):
                end = min(start + self._chunk, len(pcm))
                chunk_words = tuple(
                    w for w in marks if start + offset <= w.sample < end + offset
                )
                await out.send(TtsChunk(pcm[start:end], chunk_words))
            offset += len(pcm)
