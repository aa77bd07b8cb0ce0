"""Speech synthesis through an OpenAI-compatible speech endpoint, streamed as raw PCM.

The API returns no timestamps, so word marks are *estimates*: the sentence's words are spread
over its expected duration in proportion to their character counts, the duration taken from a
speaking rate (`chars_per_second`, scaled by `speed`). Each mark travels with the chunk in which
its estimated start falls; marks still pending when the audio ends (it was shorter than
estimated) travel with 10 ms of trailing silence. The default rate is on the slow side on purpose: a
word estimated late is at worst counted as unheard, never as heard before it was spoken.
"""

from __future__ import annotations

import bisect
import re

import httpx2
import numpy as np
import openai

from bargein.engines.base import Sink, TtsChunk, WordStart
from bargein.engines.errors import TtsError
from bargein.engines.openai_compat._client import Endpoint, LazyClient, describe

TTS_RATE = 24_000  # OpenAI's response_format="pcm": 24 kHz, 16-bit little-endian, mono
TAIL_SAMPLES = 240  # 10 ms of silence carrying the marks of words estimated past the audio's end


def estimate_word_starts(text: str, total_samples: int) -> list[WordStart]:
    """Words of `text` with start samples proportional to the characters before them."""
    words = [(m.group(), m.start()) for m in re.finditer(r"\S+", text)]
    if not words:
        return []
    first = words[0][1]
    span = max(1, len(text.rstrip()) - first)
    return [WordStart(w, int(total_samples * (pos - first) / span)) for w, pos in words]


class OpenAITTS(LazyClient):
    """`TtsEngine` over ``POST /audio/speech`` with ``response_format="pcm"``, streamed."""

    name = "openai-tts"
    sample_rate = TTS_RATE

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str = "tts-1",
        voice: str = "alloy",
        api_key: str | None = None,
        speed: float | None = None,
        instructions: str | None = None,
        chars_per_second: float = 13.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        super().__init__(Endpoint(base_url, model, api_key), http_client)
        self.voice = voice
        self.speed = speed
        self.instructions = instructions
        self.chars_per_second = chars_per_second

    def expected_samples(self, text: str) -> int:
        rate = self.chars_per_second * (self.speed or 1.0)
        return int(len(text.strip()) / rate * TTS_RATE)

    async def synthesize(self, text: str, out: Sink[TtsChunk]) -> None:
        if not text.strip():
            return
        words = estimate_word_starts(text, self.expected_samples(text))
        emitted = 0  # samples sent so far
        carry = b""  # an odd trailing byte waits for its other half
        try:
            async with self.client().audio.speech.with_streaming_response.create(
                model=self.endpoint.model,
                voice=self.voice,
                input=text,
                response_format="pcm",
                speed=self.speed if self.speed is not None else openai.omit,
                instructions=self.instructions or openai.omit,
            ) as response:
                async for data in response.iter_bytes():
                    data = carry + data
                    usable = len(data) - len(data) % 2
                    carry = data[usable:]
                    if not usable:
                        continue
                    pcm = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
                    end = emitted + len(pcm)
                    # Estimates are sorted and the earlier ones already went out, so the marks
                    # of this chunk are the leading run that starts before its end.
                    k = bisect.bisect_left(words, end, key=_sample)
                    marks, words = tuple(words[:k]), words[k:]
                    await out.send(TtsChunk(pcm, marks))
                    emitted = end
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise TtsError(f"speech at {self.endpoint.label} failed: {describe(exc)}") from exc
        if words and emitted:
            # The audio was shorter than estimated. The words left get a short silent chunk of
            # their own, so they count as heard only once all of the real audio has played.
            tail = np.zeros(TAIL_SAMPLES, dtype=np.int16)
            step = TAIL_SAMPLES // len(words)
            marks = tuple(WordStart(w.text, emitted + i * step) for i, w in enumerate(words))
            await out.send(TtsChunk(tail, marks))


def _sample(word: WordStart) -> int:
    return word.sample
