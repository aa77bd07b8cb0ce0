"""Speech recognition with Whisper tiny.en (faster-whisper / CTranslate2, int8, CPU).

Finals: Whisper on the whole utterance the stt actor fed (VAD onset with its pre-roll to the
VAD's offset). Latency design: a decode costs ~0.1–0.2 s even in a fitted window, so the
recognizer decodes **speculatively during the VAD's hang-over**: it runs its own webrtcvad over
the fed audio, and once `speculate_ms` of silence follow the last voiced frame it decodes what it
has (the user is silent, so this is the final's audio). If the user speaks again the result is
discarded; if the endpoint comes first, `end_utterance` returns it without decoding again.
`speculate_ms` (60) is well inside the end-of-turn model's ask (160 ms of silence), so the final is
usually decoded by the time the model has decided. A speculative decode is also the pause's
partial (the partial interval restarts from it), so speculating early costs few extra decodes.
The stt actor is the only caller; a decode awaited inside `feed` delays only the stt actor
(the VAD runs on and the endpoint is not delayed: frames queue in the VAD→STT channel).

Partials (they drive barge-in confirmation), chosen by ``partials``:

- ``"whisper"`` (default): Whisper on the growing utterance every ``partial_interval_ms`` of fed
  audio with speech in it (no word alignment). Accurate ("Mm. Yeah." is a backchannel, not "is
  the money"), a first partial ~`partial_interval_ms` after the onset;
- ``"sphinx"``: pocketsphinx as a fast first pass (a partial every fed batch, ~3 ms each), whose
  words Whisper's final then replaces;
- ``"off"``: finals only.

Every decode stage runs through `run_cpu` (worker thread under the process-wide limiter, or
charged to the virtual clock inline), one stage per hop: a cancelled utterance (the session
ends, the stt task is cancelled) stops its decode at the next stage boundary. Word timestamps of
the last final come from `await WhisperRecognizer.word_times()` (seconds from the utterance's
first sample), aligned on demand: nothing in a session reads them, so the alignment (10–30 ms)
stays off the path from the end of speech to the reply.
"""

from __future__ import annotations

import threading
from typing import Literal

import numpy as np
import trio
import webrtcvad

from bargein.engines.embedded.sphinx_stt import SphinxRecognizer, SphinxStt
from bargein.engines.neural.models import DEFAULT_THREADS, whisper_model
from bargein.engines.neural.whisper_decode import (
    MAX_AUDIO_S,
    ONSET_FRAMES,
    SAMPLE_RATE,
    Encoded,
    Transcription,
    WhisperDecoder,
    WordTime,
    fix_first_start,
    is_voiced,
)
from bargein.runtime.compute import run_cpu
from bargein.runtime.messages import Int16Array

__all__ = ["PartialMode", "WhisperRecognizer", "WhisperStt", "shared_decoder"]

PartialMode = Literal["whisper", "sphinx", "off"]
_FRAME = SAMPLE_RATE // 50  # 20 ms, webrtcvad's frame here
_MAX_LAG_S = 0.15  # more than one fed batch (100 ms) behind the clock
SPECULATE_MS = 60  # see WhisperStt; measured in docs/engines.md
# What word alignment needs of a final: the encoder output, the tokens, the voiced onset (s).
_Alignable = tuple[Encoded, list[int], float | None]


_decoders: dict[int, WhisperDecoder] = {}
_decoders_lock = threading.Lock()


def shared_decoder(cpu_threads: int = DEFAULT_THREADS) -> WhisperDecoder:
    """The process's decoder for `cpu_threads`: the model loaded once, then warmed by one
    decode of silence (CTranslate2's first call costs several times a normal one)."""
    with _decoders_lock:
        decoder = _decoders.get(cpu_threads)
        if decoder is None:
            decoder = WhisperDecoder(whisper_model(cpu_threads))
            decoder.generate(decoder.encode(np.zeros(SAMPLE_RATE, np.int16)))
            _decoders[cpu_threads] = decoder
        return decoder


class WhisperStt:
    """`SttEngine` on Whisper tiny.en. ``partials``: "whisper" | "sphinx" | "off";
    ``partial_interval_ms``: fed audio between Whisper partials (100–5000);
    ``speculate_ms``: silence after the last voiced frame before the speculative final decode
    (0 disables speculation; keep it below the VAD's `stop_ms`, 480 by default; 60 by default,
    well before the `smart_turn` preset's `turn_check_ms` of 160, so the final is decoded by the
    time the end-of-turn model decides);
    ``cpu_threads``: CTranslate2 threads per decode (1–16, default 1: see models.py)."""

    name = "whisper-tiny.en"

    def __init__(
        self,
        *,
        partials: PartialMode = "whisper",
        partial_interval_ms: int = 500,
        speculate_ms: int = SPECULATE_MS,
        cpu_threads: int = DEFAULT_THREADS,
    ) -> None:
        if partials not in ("whisper", "sphinx", "off"):
            raise ValueError(f"partials must be 'whisper', 'sphinx' or 'off', got {partials!r}")
        if not isinstance(partial_interval_ms, int) or not 100 <= partial_interval_ms <= 5000:
            raise ValueError(f"partial_interval_ms must be 100..5000, got {partial_interval_ms!r}")
        if not isinstance(speculate_ms, int) or not 0 <= speculate_ms <= 5000:
            raise ValueError(f"speculate_ms must be 0..5000, got {speculate_ms!r}")
        if isinstance(cpu_threads, bool) or not isinstance(cpu_threads, int):
            raise ValueError(f"cpu_threads must be an integer in 1..16, got {cpu_threads!r}")
        if not 1 <= cpu_threads <= 16:
            raise ValueError(f"cpu_threads must be an integer in 1..16, got {cpu_threads!r}")
        self.partials: PartialMode = partials
        self.partial_interval_ms = partial_interval_ms
        self.speculate_ms = speculate_ms
        self.cpu_threads = cpu_threads
        self._decoder: WhisperDecoder | None = None
        self._sphinx = SphinxStt() if partials == "sphinx" else None
        # Whisper scores its partials (`Hypothesis.scored_partials`); pocketsphinx's first pass
        # does not, and its partials say so.
        self.partial_confidence = partials != "sphinx"

    def decoder(self) -> WhisperDecoder:
        """The shared decoder (loads the model on first use: call it in a worker thread)."""
        if self._decoder is None:
            self._decoder = shared_decoder(self.cpu_threads)
        return self._decoder

    async def warm(self) -> None:
        """Load the model now (once per process), off the loop."""
        await run_cpu(self.decoder)
        if self._sphinx is not None:
            await self._sphinx.warm()

    def recognizer(self) -> WhisperRecognizer:
        first_pass = self._sphinx.recognizer() if self._sphinx is not None else None
        return WhisperRecognizer(self, first_pass)


class WhisperRecognizer:
    """One session's `Recognizer`. One utterance at a time, from one task."""

    def __init__(self, engine: WhisperStt, first_pass: SphinxRecognizer | None) -> None:
        self._engine = engine
        self._first_pass = first_pass
        self._vad = webrtcvad.Vad(2)
        self._closed = False
        self._open = False
        self._words: tuple[WordTime, ...] = ()  # the last final's, once aligned
        self._to_align: _Alignable | None = None  # the last final's, not aligned yet
        self.stats = {"decodes": 0, "speculative_used": 0, "speculative_discarded": 0}
        self._reset()

    def _reset(self) -> None:
        self._chunks: list[Int16Array] = []
        self._n = 0
        self._scanned = 0  # samples already judged by webrtcvad (whole frames)
        self._voiced_end = 0  # end sample of the last voiced frame; 0: no speech yet
        self._onset: int | None = None  # first sample of the first run of voiced frames
        self._run = 0  # voiced frames in a row
        self._last_partial = ""
        self._partial_at = 0  # sample count at the last Whisper partial
        # (voiced_end, result, what aligning its words needs)
        self._speculated: tuple[int, Transcription, _Alignable | None] | None = None
        self._clock0: tuple[float, int] | None = None  # (session time, samples) at first feed

    async def start_utterance(self) -> None:
        if self._closed:
            raise RuntimeError("recognizer is closed")
        self._reset()
        self._open = True
        if self._first_pass is not None:
            await self._first_pass.start_utterance()  # abandons an unfinished one
        else:
            await trio.lowlevel.checkpoint()

    async def feed(self, pcm: Int16Array) -> str | None:
        if not self._open:
            raise RuntimeError("feed() outside an utterance: call start_utterance() first")
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"expected mono int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
        if len(pcm) == 0:
            await trio.lowlevel.checkpoint()
            return None
        self._chunks.append(pcm)
        self._n += len(pcm)
        now = trio.current_time()
        if self._clock0 is None:
            self._clock0 = (now, self._n)
        self._scan()
        partial: str | None = None
        if self._first_pass is not None:
            partial = await self._first_pass.feed(pcm)
        engine = self._engine
        silence = self._n - self._voiced_end
        if (
            engine.speculate_ms
            and self._voiced_end
            and silence * 1000 >= engine.speculate_ms * SAMPLE_RATE
            and (self._speculated is None or self._speculated[0] != self._voiced_end)
        ):
            if self._speculated is not None:
                self.stats["speculative_discarded"] += 1
            voiced_end = self._voiced_end
            result, alignable = await self._decode()
            self._speculated = (voiced_end, result, alignable)
            if engine.partials == "whisper":
                partial = result.hypothesis()
                self._partial_at = self._n  # this pause's partial: the interval restarts here
        elif (
            engine.partials == "whisper"
            and not self._behind(now)
            and not self._speculation_next(silence, len(pcm))
            and self._voiced_end > self._partial_at
            and (self._n - self._partial_at) * 1000 >= engine.partial_interval_ms * SAMPLE_RATE
        ):
            self._partial_at = self._n
            partial = (await self._decode())[0].hypothesis()
        if partial and partial != self._last_partial:
            self._last_partial = partial
            return partial
        if not partial:
            await trio.lowlevel.checkpoint()
        return None

    async def end_utterance(self) -> str:
        """The final transcript, a `Hypothesis` with Whisper's confidence on each word."""
        if not self._open:
            raise RuntimeError("end_utterance() without start_utterance()")
        speculated = self._speculated
        alignable: _Alignable | None = None
        if speculated is not None and speculated[0] == self._voiced_end:
            self.stats["speculative_used"] += 1
            _, result, alignable = speculated
            await trio.lowlevel.checkpoint()
        elif self._voiced_end == 0:
            result = Transcription("")  # nothing voiced: Whisper would only hallucinate
            await trio.lowlevel.checkpoint()
        else:
            if speculated is not None:
                self.stats["speculative_discarded"] += 1
            result, alignable = await self._decode()
        # The first pass's utterance is left open: closing it costs pocketsphinx's final
        # (up to ~0.4 s) on the critical path; the next start_utterance abandons it.
        self._open = False
        self._words, self._to_align = result.words, alignable
        text = result.hypothesis()
        self._reset()
        return text

    async def word_times(self) -> tuple[WordTime, ...]:
        """The last final's words with their times (seconds from the utterance's first sample,
        pre-roll included), `()` before the first final or when it was empty. Aligned on the first
        call after the final (one `run_cpu` hop), then kept until the next final."""
        pending = self._to_align
        if pending is None:
            await trio.lowlevel.checkpoint()
            return self._words
        encoded, tokens, onset = pending
        aligned = await run_cpu(self._engine.decoder().align, encoded, tokens)
        aligned = fix_first_start(aligned, onset)
        if self._to_align is pending:  # no newer final meanwhile
            self._words, self._to_align = aligned, None
        return aligned

    async def aclose(self) -> None:
        """Never raises, even when cancelled."""
        if not self._closed:
            self._closed = True
            self._open = False
            self._words, self._to_align = (), None  # drops the encoder output held for it
            self._reset()
            if self._first_pass is not None:
                await self._first_pass.aclose()
                return
        await trio.lowlevel.cancel_shielded_checkpoint()

    def _speculation_next(self, silence: int, fed: int) -> bool:
        """Whether the next feed of this size starts the speculative decode: a partial now would
        decode the same words and hold up the final behind it (a partial begun in the pause
        delayed the final by ~150 ms on the shared recordings)."""
        speculate = self._engine.speculate_ms
        return bool(speculate and silence and (silence + fed) * 1000 >= speculate * SAMPLE_RATE)

    def _behind(self, now: float) -> bool:
        """Whether the audio fed so far lags the clock (earlier decodes held the stt actor up
        and frames queued): then Whisper partials are skipped until it has caught up."""
        assert self._clock0 is not None
        t0, n0 = self._clock0
        return (now - t0) - (self._n - n0) / SAMPLE_RATE > _MAX_LAG_S

    def _scan(self) -> None:
        """webrtcvad over the new whole frames (a few µs each, on the loop)."""
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        audio = self._chunks[0]
        while self._scanned + _FRAME <= self._n:
            frame = audio[self._scanned : self._scanned + _FRAME]
            if is_voiced(self._vad, frame):
                self._voiced_end = self._scanned + _FRAME
                self._run += 1
                if self._onset is None and self._run == ONSET_FRAMES:
                    self._onset = self._voiced_end - ONSET_FRAMES * _FRAME
            else:
                self._run = 0
            self._scanned += _FRAME

    async def _decode(self) -> tuple[Transcription, _Alignable | None]:
        """Whisper over the utterance so far, one stage per `run_cpu` hop; the transcription
        and what aligning its words later needs (None: nothing to align, or already aligned)."""
        self.stats["decodes"] += 1
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        decoder = self._engine._decoder
        if decoder is None:
            decoder = await run_cpu(self._engine.decoder)
        if len(audio) > MAX_AUDIO_S * SAMPLE_RATE:
            # Rare in conversation: decode the long utterance window by window in one hop.
            return await run_cpu(decoder.transcribe_sync, audio, True), None
        encoded = await run_cpu(decoder.encode, audio)
        tokens, confidence = await run_cpu(decoder.generate_scored, encoded)
        if not tokens:
            return Transcription(""), None
        onset = None if self._onset is None else self._onset / SAMPLE_RATE
        return Transcription(decoder.text(tokens), confidence=confidence), (encoded, tokens, onset)
