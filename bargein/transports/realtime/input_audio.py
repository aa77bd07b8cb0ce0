"""The client's input audio: decoded to the session's rate and, with turn detection off, held
in a bounded buffer until `input_audio_buffer.commit`; then transcribed by the recognizer.

Pure and synchronous except `recognize` (which drives a recognizer); the connection
(connection.py) decides when each is called.
"""

from __future__ import annotations

import numpy as np

from bargein.dsp import Resampler, alaw_decode, pcm16_from_bytes, ulaw_decode
from bargein.engines.base import Recognizer
from bargein.transports.realtime.errors import (
    BUFFER_EMPTY,
    BUFFER_FULL,
    INVALID_VALUE,
    RealtimeInvalid,
)

RATE = 24000  # the session runs at audio/pcm's rate; G.711 is converted at the edge
MAX_BUFFER_S = 300  # a manual-mode input buffer holds at most this much audio


class InputAudio:
    """Decoding (with the G.711 upsampler's state) and the manual-mode buffer."""

    def __init__(self) -> None:
        # PCM16 bytes, not a list of arrays: a client may append one sample at a time, and an
        # array each cost ~120 bytes per 2 bytes of audio (~880 MB at the 300 s cap).
        self._buffer = bytearray()
        self._buffered = 0
        self._upsample: Resampler | None = None

    def format_changed(self) -> None:
        """The input format changed: G.711 resampling starts afresh."""
        self._upsample = None

    def decode(self, fmt: str, audio: bytes) -> np.ndarray:
        if fmt == "audio/pcm":
            if len(audio) % 2:
                raise RealtimeInvalid(INVALID_VALUE, "audio/pcm audio must be whole 16-bit "
                                      "samples (an even number of bytes)", param="audio")
            return pcm16_from_bytes(audio)
        narrow = ulaw_decode(audio) if fmt == "audio/pcmu" else alaw_decode(audio)
        if self._upsample is None:
            self._upsample = Resampler(8000, RATE)
        return self._upsample.process_int16(narrow)

    def hold(self, pcm: np.ndarray) -> None:
        """Manual mode: keep `pcm` until commit or clear."""
        if self._buffered + len(pcm) > MAX_BUFFER_S * RATE:
            raise RealtimeInvalid(BUFFER_FULL, f"the input buffer holds {MAX_BUFFER_S} s; "
                                  "commit or clear it")
        self._buffer += pcm.astype("<i2", copy=False).tobytes()
        self._buffered += len(pcm)

    def check_committable(self) -> None:
        if self._buffered < RATE // 10:
            raise RealtimeInvalid(BUFFER_EMPTY, "the input buffer holds less than 100 ms of "
                                  "audio")

    def take(self) -> np.ndarray:
        """The held audio (the buffer is empty afterwards)."""
        pcm = np.frombuffer(self._buffer, dtype="<i2").astype(np.int16)  # a copy: ours
        self.clear()
        return pcm

    def clear(self) -> None:
        self._buffer, self._buffered = bytearray(), 0


async def recognize(rec: Recognizer, pcm: np.ndarray) -> str:
    """A committed buffer (24 kHz) through `rec` at 16 kHz, in 100 ms pieces."""
    down = Resampler(RATE, 16000)
    narrow = np.concatenate([down.process_int16(pcm), down.flush_int16()])
    await rec.start_utterance()
    step = 1600
    for at in range(0, len(narrow), step):
        await rec.feed(narrow[at:at + step])
    return await rec.end_utterance()
