"""Speech recognition through an OpenAI-compatible transcriptions endpoint (Whisper and kin).

The endpoint takes whole files, so a recognizer buffers its utterance's 16 kHz PCM, gives no
partial hypotheses, and posts one WAV when the utterance ends.
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
    ) -> None:
        super().__init__(Endpoint(base_url, model, api_key), http_client)
        self.language = language
        self.prompt = prompt

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
    """One session's recognizer: buffers the utterance, transcribes it at the end."""

    def __init__(self, engine: OpenAISTT) -> None:
        self._engine = engine
        self._chunks: list[Int16Array] = []

    async def start_utterance(self) -> None:
        self._chunks = []

    async def feed(self, pcm: Int16Array) -> str | None:
        self._chunks.append(np.asarray(pcm, dtype=np.int16).copy())
        return None  # the endpoint gives no partial hypotheses

    async def end_utterance(self) -> str:
        chunks, self._chunks = self._chunks, []
        if not chunks or sum(len(c) for c in chunks) == 0:
            return ""
        return await self._engine.transcribe(np.concatenate(chunks))

    async def aclose(self) -> None:
        self._chunks = []
