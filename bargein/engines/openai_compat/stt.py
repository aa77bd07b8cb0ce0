"""Speech recognition through an OpenAI-compatible transcriptions endpoint (Whisper and kin).

The endpoint takes whole files, so a recognizer buffers its utterance's 16 kHz PCM and posts one
WAV when the utterance ends. The buffer is bounded: an utterance longer than
`max_utterance_s` (30 s by default, Whisper's window) is transcribed in pieces of at most that
length as they fill; each finished piece's text is the partial hypothesis, and the final
transcript joins them all.
"""

from __future__ import annotations

import io
import wave

import httpx2
import numpy as np
import openai

from bargein.engines.errors import SttError
from bargein.engines.openai_compat._client import Endpoint, LazyClient, describe
from bargein.runtime.messages import Int16Array

STT_RATE = 16_000


def wav_bytes(pcm: Int16Array, rate: int = STT_RATE) -> bytes:
    """A mono PCM16 WAV file in memory."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.ascontiguousarray(pcm, dtype="<i2").tobytes())
    return buffer.getvalue()


class OpenAISTT(LazyClient):
    """`SttEngine` over ``POST /audio/transcriptions`` (one request per utterance)."""

    name = "openai-stt"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        model: str = "whisper-1",
        api_key: str | None = None,
        language: str | None = None,
        prompt: str | None = None,
        http_client: httpx2.AsyncClient | None = None,
        max_utterance_s: float = 30.0,
    ) -> None:
        super().__init__(Endpoint(base_url, model, api_key), http_client)
        if not 0.1 <= max_utterance_s <= 600:
            raise ValueError("max_utterance_s must be between 0.1 and 600 seconds")
        self.language = language
        self.prompt = prompt
        self.max_samples = int(max_utterance_s * STT_RATE)

    def recognizer(self) -> OpenAIRecognizer:
        return OpenAIRecognizer(self)

    async def transcribe(self, pcm: Int16Array) -> str:
        """Transcribe one utterance of 16 kHz PCM16; errors become `SttError`."""
        try:
            result = await self.client().audio.transcriptions.create(
                model=self.endpoint.model,
                file=("utterance.wav", wav_bytes(pcm), "audio/wav"),
                response_format="json",
                language=self.language or openai.omit,
                prompt=self.prompt or openai.omit,
            )
        except (openai.OpenAIError, httpx2.HTTPError) as exc:
            raise SttError(
                f"transcription at {self.endpoint.label} failed: {describe(exc)}"
            ) from exc
        text: str = result.text
        return text.strip()


class OpenAIRecognizer:
    """One session's recognizer: buffers the utterance (at most `max_samples`), transcribes it
    at the end, or a full buffer at once."""

    def __init__(self, engine: OpenAISTT) -> None:
        self._engine = engine
        self._chunks: list[Int16Array] = []
        self._buffered = 0
        self._texts: list[str] = []  # transcripts of the pieces already posted

    async def start_utterance(self) -> None:
        self._chunks, self._buffered, self._texts = [], 0, []

    async def feed(self, pcm: Int16Array) -> str | None:
        pcm = np.asarray(pcm, dtype=np.int16)
        limit = self._engine.max_samples
        changed = False
        while len(pcm):
            take = pcm[: limit - self._buffered]
            pcm = pcm[len(take) :]
            self._chunks.append(take.copy())
            self._buffered += len(take)
            if self._buffered >= limit:  # the bound: finalize this piece now
                text = await self._transcribe_buffer()
                if text:
                    self._texts.append(text)
                    changed = True
        return " ".join(self._texts) if changed else None

    async def end_utterance(self) -> str:
        last = await self._transcribe_buffer()
        texts, self._texts = [*self._texts, last], []
        return " ".join(t for t in texts if t)

    async def _transcribe_buffer(self) -> str:
        chunks, self._chunks, self._buffered = self._chunks, [], 0
        if not chunks or sum(len(c) for c in chunks) == 0:
            return ""
        return await self._engine.transcribe(np.concatenate(chunks))

    async def aclose(self) -> None:
        self._chunks, self._buffered, self._texts = [], 0, []
