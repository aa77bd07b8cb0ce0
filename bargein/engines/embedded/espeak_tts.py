"""Speech synthesis with espeak-ng through ctypes, on the library and data `espeakng_loader` ships.

Streaming granularity: one espeak call per sentence, then the sentence's audio is streamed into
`out` in chunks of ``chunk_ms``. espeak-ng synthesizes English at several hundred times real
time (a 15-word sentence costs 2–6 ms), so streaming from inside the synthesis would save at
most those few ms of first-audio latency; in exchange it would have to hold espeak's process-wide
lock across awaits on `out`, so one slow consumer (egress backpressure, a paused turn) would
stall every other session's speech. Synthesizing the sentence whole keeps the lock held only for
CPU time, and chunking keeps the per-turn channel's backpressure meaningful.

Word marks: espeak reports a WORD event per spoken word with the character position of the
word in our text and its audio position in ms. Its notion of a word is not ours ("12.5" gives
three events, "it's" is reported with length 2, "—" gives none), so the event positions are
mapped onto the sentence's whitespace-separated tokens: each token starts at its first event,
and a token without an event (punctuation, a symbol espeak skips) is heard together with the
token before it. The reported texts are thus exactly ``text.split()``, in order.
"""

from __future__ import annotations

import bisect
import ctypes
import re
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    Union,
    c_char,
    c_char_p,
    c_int,
    c_short,
    c_size_t,
    c_ubyte,
    c_uint,
    c_void_p,
)
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trio

from bargein.engines.base import Sink, TtsChunk, WordStart
from bargein.engines.embedded.options import (
    CHUNK_MS_MAX,
    PITCH_MAX,
    PITCH_MIN,
    RATE_MAX,
    RATE_MIN,
    check_bool,
    check_int,
    check_voice,
    espeak_catalogue,
)
from bargein.engines.errors import TtsError
from bargein.runtime.compute import run_cpu
from bargein.runtime.messages import Int16Array

__all__ = ["RATE_MAX", "RATE_MIN", "EspeakTts", "espeak_variants", "espeak_voices"]

# speak_lib.h (API revision 12)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_POS_CHARACTER = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_RATE, _PITCH = 1, 3
_EE_OK = 0


class _EventId(Union):
    _fields_ = (("number", c_int), ("name", c_char_p), ("string", c_char * 8))


class _Event(Structure):
    _fields_ = (
        ("type", c_int),
        ("unique_identifier", c_uint),
        ("text_position", c_int),  # 1-based, in characters of the UTF-8 text
        ("length", c_int),
        ("audio_position", c_int),  # ms from the start of this espeak_Synth call
        ("sample", c_int),
        ("user_data", c_void_p),
        ("id", _EventId),
    )


class _Voice(Structure):
    _fields_ = (
        ("name", c_char_p),
        ("languages", c_void_p),  # (priority byte, NUL-terminated string)*, then a zero byte
        ("identifier", c_char_p),
        ("gender", c_ubyte),
        ("age", c_ubyte),
        ("variant", c_ubyte),
        ("xx1", c_ubyte),
        ("score", c_int),
        ("spare", c_void_p),
    )


_SynthCallback = CFUNCTYPE(c_int, POINTER(c_short), c_int, POINTER(_Event))


@dataclass
class _Job:
    pcm: list[Int16Array] = field(default_factory=list)
    words: list[tuple[int, int]] = field(default_factory=list)  # (0-based char index, ms)


class _Espeak:
    """The process's one espeak-ng. Every call holds `lock`: espeak is global state."""

    def __init__(self) -> None:
        import espeakng_loader

        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = (c_int, c_int, c_char_p, c_int)
        lib.espeak_Initialize.restype = c_int
        lib.espeak_SetSynthCallback.argtypes = (_SynthCallback,)
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = (c_char_p,)
        lib.espeak_SetVoiceByName.restype = c_int
        lib.espeak_SetParameter.argtypes = (c_int, c_int, c_int)
        lib.espeak_SetParameter.restype = c_int
        lib.espeak_Synth.argtypes = (
            c_void_p, c_size_t, c_uint, c_int, c_uint, c_uint, POINTER(c_uint), c_void_p,
        )  # fmt: skip
        lib.espeak_Synth.restype = c_int
        lib.espeak_ListVoices.argtypes = (c_void_p,)
        lib.espeak_ListVoices.restype = POINTER(POINTER(_Voice))
        self.lib = lib
        self.lock = threading.Lock()
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise TtsError(f"espeak-ng failed to initialise with data at {data.decode()}")
        self.sample_rate = rate
        self._job: _Job | None = None
        self._voice: str | None = None
        # Kept as an attribute: ctypes must keep the callback object alive while C holds it.
        self._callback = _SynthCallback(self._on_audio)
        lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, n: int, events: Any) -> int:
        job = self._job
        if job is None:  # not ours (cannot happen under the lock); ask espeak to stop
            return 1
        if n > 0:
            job.pcm.append(np.ctypeslib.as_array(wav, shape=(n,)).astype(np.int16, copy=True))
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                job.words.append((event.text_position - 1, event.audio_position))
            i += 1
        return 0

    def set_voice(self, voice: str) -> bool:
        """Caller holds the lock. Loading a voice costs ~0.1–0.4 ms, so it is cached."""
        if voice != self._voice:
            if self.lib.espeak_SetVoiceByName(voice.encode()) != _EE_OK:
                self._voice = None
                return False
            self._voice = voice
        return True

    def synth(self, text: str, voice: str, rate: int, pitch: int, end_pause: bool) -> _Job:
        with self.lock:
            if not self.set_voice(voice):  # checked against the catalogue: not expected
                raise TtsError(f"espeak-ng refused the voice {voice!r}")
            # Rate and pitch survive voice changes and other engines' calls: set them each time.
            self.lib.espeak_SetParameter(_RATE, rate, 0)
            self.lib.espeak_SetParameter(_PITCH, pitch, 0)
            data = text.encode("utf-8")
            flags = _CHARS_UTF8 | (_ENDPAUSE if end_pause else 0)
            self._job = job = _Job()
            try:
                err = self.lib.espeak_Synth(
                    data, len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None
                )
            finally:
                self._job = None
            if err != _EE_OK:
                raise TtsError(f"espeak-ng synthesis failed with error {err}")
            return job

    def voices(self) -> list[tuple[str, tuple[str, ...]]]:
        """(identifier, languages) of every installed voice."""
        with self.lock:
            found = []
            array = self.lib.espeak_ListVoices(None)
            i = 0
            while array[i]:
                voice = array[i].contents
                found.append(((voice.identifier or b"").decode(), _languages(voice.languages)))
                i += 1
            return found


def _languages(pointer: int | None) -> tuple[str, ...]:
    out: list[str] = []
    if not pointer:
        return ()
    offset = 0
    while ctypes.string_at(pointer + offset, 1) != b"\0":  # priority byte; 0 ends the list
        name = ctypes.string_at(pointer + offset + 1)
        out.append(name.decode("utf-8", "replace"))
        offset += 1 + len(name) + 1
    return tuple(out)


_instance: _Espeak | None = None
_instance_lock = threading.Lock()


def _espeak() -> _Espeak:
    global _instance
    with _instance_lock:
        if _instance is None:
            _instance = _Espeak()
        return _instance


def espeak_voices() -> list[tuple[str, tuple[str, ...]]]:
    """The installed espeak-ng voices as (identifier, languages), as `espeak_ListVoices` gives
    them; `EspeakTts` takes an identifier or its last path component ("gmw/en-US", "en-us")."""
    return list(espeak_catalogue().voices)


def espeak_variants() -> list[str]:
    """The voice variants `EspeakTts` accepts after a ``+`` ("en-us+f3")."""
    return sorted(espeak_catalogue().variants)


_TOKEN = re.compile(r"\S+")


def align_words(
    text: str, events: list[tuple[int, int]], n_samples: int, rate: int
) -> tuple[WordStart, ...]:
    """Map espeak WORD events (char index, ms) onto the whitespace tokens of `text`."""
    tokens = [(m.start(), m.end(), m.group()) for m in _TOKEN.finditer(text)]
    starts = [t[0] for t in tokens]
    first: list[int | None] = [None] * len(tokens)
    for char, ms in events:
        i = bisect.bisect_right(starts, char) - 1
        if i < 0 or char >= tokens[i][1]:
            i += 1  # in whitespace (or before the first token): belongs to the next token
        if i < len(tokens) and first[i] is None:
            first[i] = min(round(ms * rate / 1000), max(n_samples - 1, 0))
    words: list[WordStart] = []
    previous = 0
    for (_, _, token), sample in zip(tokens, first, strict=True):
        # Unspoken tokens ride with the previous word; max() keeps the marks non-decreasing.
        previous = max(previous, sample if sample is not None else previous)
        words.append(WordStart(token, previous))
    return tuple(words)


class EspeakTts:
    """`TtsEngine` on espeak-ng.

    ``voice``: a voice identifier from `espeak_voices()` or its last path component, any case
    ("en-us", "en", "fr", "gmw/en-GB-x-rp"), optionally ``+variant`` from `espeak_variants()`
    ("en-us+f3"); ``rate_wpm``: integer 80–450 words per minute; ``pitch``: integer 0–100 (50
    normal); ``chunk_ms``: integer 1–10000. A bad value raises ValueError (out of range,
    unknown voice) or TypeError (wrong type, e.g. ``rate_wpm=200.5``) naming the option, here,
    before anything reaches espeak-ng — never at the first sentence."""

    name = "espeak-ng"

    def __init__(
        self,
        voice: str = "en-us",
        *,
        rate_wpm: int = 175,
        pitch: int = 50,
        end_pause: bool = True,
        chunk_ms: int = 200,
    ) -> None:
        # Pure Python, no lock and no C call: this runs on the event loop for every connection,
        # and espeak itself is loaded on the first synthesis, in a worker thread.
        self.voice = check_voice(voice)
        self.rate_wpm = check_int("rate_wpm", rate_wpm, RATE_MIN, RATE_MAX)
        self.pitch = check_int("pitch", pitch, PITCH_MIN, PITCH_MAX)
        # A sentence-final pause, so consecutive sentences do not run into each other.
        self.end_pause = check_bool("end_pause", end_pause)
        check_int("chunk_ms", chunk_ms, 1, CHUNK_MS_MAX)
        self.sample_rate: int = espeak_catalogue().sample_rate
        self._chunk = max(1, self.sample_rate * chunk_ms // 1000)

    async def warm(self) -> None:
        """Load espeak-ng now (~0.6 s of CPU, in a worker thread) instead of at the first reply."""
        await run_cpu(_espeak)

    def synthesize_sync(self, text: str) -> tuple[Int16Array, tuple[WordStart, ...]]:
        """The whole sentence's audio and word marks (blocking; holds espeak's lock ~ms)."""
        # NUL would end the C string early; a space keeps every character position.
        text = text.replace("\0", " ")
        job = _espeak().synth(text, self.voice, self.rate_wpm, self.pitch, self.end_pause)
        pcm = np.concatenate(job.pcm) if job.pcm else np.zeros(0, np.int16)
        if not job.words and not pcm.any():
            return np.zeros(0, np.int16), ()  # nothing speakable ("...", "?")
        return pcm, align_words(text, job.words, len(pcm), self.sample_rate)

    async def synthesize(self, text: str, out: Sink[TtsChunk]) -> None:
        if not text.strip():
            await trio.lowlevel.checkpoint()
            return
        pcm, words = await run_cpu(self.synthesize_sync, text)
        n = len(pcm)
        for start in range(0, n, self._chunk):
            end = min(start + self._chunk, n)
            # align_words keeps every mark inside the audio, so each lands in one chunk.
            chunk_words = tuple(w for w in words if start <= w.sample < end)
            await out.send(TtsChunk(pcm[start:end], chunk_words))
