"""Streaming speech recognition with pocketsphinx and the English model its wheel ships.

Costs measured on the shared recordings (see docs/engines.md): building a decoder with the
default language model takes 0.25–0.45 s and ~90 MB (keyword/grammar mode: ~0.09 s, ~25 MB);
one 20 ms feed costs ~3 ms of CPU on average (spikes to ~20–30 ms); closing an utterance costs
a few ms with the default single-pass search, against 0.1–0.7 s with pocketsphinx's second
(`fwdflat`) pass, which is why that pass is off by default.

Pocketsphinx cannot share a loaded model between decoders (each decoder owns its dictionary,
language model and search state, none of it thread-safe), so the process keeps one pool of idle
decoders per configuration, shared by every engine and session: a recognizer borrows a decoder
for each utterance and returns it when the utterance ends, so a server needs as many decoders as
people speaking at once, not as many as connected, and a new session skips the load.

pocketsphinx holds the GIL while it decodes (measured: two threads decoding get 1.0 core between
them), so decoding in worker threads keeps the event loop responsive but does not use a second
core; see docs/engines.md.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import trio

from bargein.engines.embedded.options import check_bool, check_int, check_probability
from bargein.engines.embedded.sphinx_decoders import (
    ConfigValue,
    DecoderSpec,
    hypothesis,
    remote_drop,
    remote_end,
    remote_feed,
    remote_start,
    remote_warm,
    scored_hypothesis,
    shared_pool,
    unscored,
)
from bargein.engines.errors import SttError
from bargein.runtime.compute import (
    CpuWorker,
    compute_mode,
    pin_worker,
    run_cpu,
    started_workers,
    unpin,
)
from bargein.runtime.messages import Int16Array

__all__ = ["DICTATION_SEARCH", "SphinxRecognizer", "SphinxStt"]

SAMPLE_RATE = 16_000
CLOSE_BOUND = 1.0  # s; dropping an abandoned utterance in a worker process
MAX_KEYPHRASES = 256
MAX_PHRASE_CHARS = 200
MAX_GRAMMAR_CHARS = 64 * 1024
MAX_CONFIG_CHARS = 4096
MAX_IDLE_DECODERS = 64
GIL_PIECE_BYTES = 640  # 20 ms of 16 kHz PCM16 per `process_raw` call in a thread
# Dictation's search limits (pocketsphinx's defaults: maxwpf -1, maxhmmpf 30000). At most 5
# distinct word exits per frame and 4000 active HMMs: -45 % CPU per audio second on the shared
# recordings (0.22-0.24 -> 0.13) with no word lost (mean WER 0.373 -> 0.358, docs/engines.md).
# 2500 HMMs is the cliff (jfk.wav comes out empty), hence the margin. `options` override them.
DICTATION_SEARCH: dict[str, ConfigValue] = {"maxwpf": 5, "maxhmmpf": 4000}


class SphinxStt:
    """`SttEngine` on pocketsphinx. Three modes, chosen by the constructor options:

    - default: large-vocabulary dictation with the bundled US-English language model;
    - ``keyphrases``: keyword spotting; the transcript is the spotted phrases in order. Give a
      sequence (all use ``kws_threshold``) or a mapping phrase → threshold (1e-50 … 1e-5; larger
      means fewer false alarms, tune per phrase: longer phrases take smaller thresholds);
    - ``grammar``: a JSGF grammar (text); the transcript is the best sentence of the grammar.

    ``second_pass`` turns on pocketsphinx's fwdflat rescoring (slower final, not more accurate
    on the shared recordings). ``options`` passes any other pocketsphinx config value through;
    dictation's search limits (`DICTATION_SEARCH`) are among them.
    Configuration errors (bad grammar, unknown words) surface as ValueError on the first
    utterance, or earlier from `await engine.warm()`.
    """

    name: str
    # Partials carry no word confidence (no lattice before the utterance ends); every
    # transcript says so (`Hypothesis.scored_partials`, docs/engines.md "Word confidence").
    partial_confidence = False

    def __init__(
        self,
        *,
        keyphrases: Sequence[str] | Mapping[str, float] | None = None,
        kws_threshold: float = 1e-10,
        grammar: str | None = None,
        second_pass: bool = False,
        options: Mapping[str, ConfigValue] | None = None,
        max_idle_decoders: int = 16,
    ) -> None:
        if keyphrases is not None and grammar is not None:
            raise ValueError("choose keyphrases or grammar, not both")
        kws_threshold = check_probability("kws_threshold", kws_threshold)
        self._keyphrases = _check_keyphrases(keyphrases, kws_threshold)
        if grammar is not None:
            grammar = _check_text("grammar", grammar, MAX_GRAMMAR_CHARS)
            if not grammar.strip():
                raise ValueError("grammar must be JSGF text")
        second_pass = check_bool("second_pass", second_pass)
        check_int("max_idle_decoders", max_idle_decoders, 0, MAX_IDLE_DECODERS)
        self._grammar = grammar
        self._config: dict[str, ConfigValue] = {"loglevel": "FATAL", "fwdflat": second_pass}
        if self._keyphrases is not None or grammar is not None:
            self._config["lm"] = None  # skip loading the 27 MB language model
        else:
            self._config.update(DICTATION_SEARCH)  # measured on dictation only
        self._config.update(_check_config(options))
        self.mode = "keyword" if self._keyphrases else "grammar" if grammar else "dictation"
        self.name = f"pocketsphinx-{self.mode}"
        self._spec = DecoderSpec(dict(self._config), self._keyphrases, grammar, max_idle_decoders)
        self._pool = shared_pool(self._spec)

    def recognizer(self) -> SphinxRecognizer:
        """A recognizer for one session. Cheap: a decoder is borrowed per utterance."""
        return SphinxRecognizer(self._spec)

    async def warm(self, decoders: int = 1) -> None:
        """Load ``decoders`` decoders into the idle pool now (and surface config errors early).
        With worker processes on, each worker's pool gets its share instead (utterances are
        spread over the workers): a decoder built on demand costs its worker ~0.3-0.45 s, during
        which every other utterance pinned to that worker waits, so a burst of first
        utterances on cold workers falls seconds behind real time."""
        await trio.lowlevel.checkpoint()
        workers = await started_workers()
        if workers:
            share = -(-decoders // len(workers))
            for worker in workers:
                await worker.call(remote_warm, self._spec, share)
            return
        made = [await run_cpu(self._pool.acquire) for _ in range(decoders)]
        for decoder in made:
            self._pool.release(decoder)

    @property
    def idle_decoders(self) -> int:
        """Idle decoders in the process-wide pool of this configuration."""
        return self._pool.idle

    @property
    def decoders_built(self) -> int:
        """Decoders of this configuration loaded so far in this process."""
        return self._pool.built


def _norm_phrase(phrase: str) -> str:
    return " ".join(phrase.lower().split())


def _check_text(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if len(value) > limit or "\0" in value:
        raise ValueError(f"{name} must be at most {limit} characters, without NUL")
    return value


def _check_keyphrases(
    keyphrases: Sequence[str] | Mapping[str, float] | None, threshold: float
) -> dict[str, float] | None:
    if keyphrases is None:
        return None
    if isinstance(keyphrases, str):
        raise ValueError("keyphrases must be a sequence of phrases, not one string")
    if not isinstance(keyphrases, Sequence | Mapping):
        raise TypeError("keyphrases must be a sequence of phrases or a mapping phrase -> threshold")
    if not 0 < len(keyphrases) <= MAX_KEYPHRASES:
        raise ValueError(f"keyphrases must hold 1..{MAX_KEYPHRASES} phrases")
    items = (
        keyphrases.items()
        if isinstance(keyphrases, Mapping)
        else ((p, threshold) for p in keyphrases)
    )
    phrases: dict[str, float] = {}
    for phrase, value in items:
        phrase = _norm_phrase(_check_text("keyphrases", phrase, MAX_PHRASE_CHARS))
        if not phrase:
            raise ValueError("keyphrases must be non-empty phrases")
        phrases[phrase] = check_probability("keyword thresholds", value)
    return phrases


@functools.cache
def _config_types() -> dict[str, type]:
    from pocketsphinx import Config

    return {arg.name: arg.type for arg in Config().describe()}


def _check_config(options: Mapping[str, ConfigValue] | None) -> dict[str, ConfigValue]:
    """Raw pocketsphinx config values, each a known key with a value of its declared type."""
    if options is None:
        return {}
    if not isinstance(options, Mapping):
        raise TypeError("options must be a mapping of pocketsphinx config names to values")
    known = _config_types()
    checked: dict[str, ConfigValue] = {}
    for key, value in options.items():
        kind = known.get(key) if isinstance(key, str) else None
        if kind is None:
            raise ValueError(f"options: pocketsphinx has no config value {str(key)[:64]!r}")
        if value is None or (kind is bool and isinstance(value, bool)):
            checked[key] = value
        elif kind is int:
            checked[key] = check_int(f"options.{key}", value, -(2**31), 2**31 - 1)
        elif kind is float and not isinstance(value, bool) and isinstance(value, int | float):
            if not math.isfinite(value):
                raise ValueError(f"options.{key} must be finite")
            checked[key] = value
        elif kind is str:
            checked[key] = _check_text(f"options.{key}", value, MAX_CONFIG_CHARS)
        else:
            raise TypeError(f"options.{key} must be {kind.__name__}, got {type(value).__name__}")
    return checked


class SphinxRecognizer:
    """One session's `Recognizer`. Not for concurrent use: one utterance at a time, one task.

    With worker processes on (`bargein.runtime.compute.set_worker_processes`), each utterance
    runs in the least-loaded worker, on that worker's own pool of decoders; otherwise in
    `run_cpu` on this process's pool."""

    def __init__(self, spec: DecoderSpec) -> None:
        self._spec = spec
        self._pool = shared_pool(spec)
        self._decoder: Any = None
        self._remote: tuple[CpuWorker, int] | None = None
        self._cmn: str | None = None  # this session's CMN estimate (see DecoderPool.fresh_cmn)
        self._in_utterance = False
        self._last_partial = ""
        self._closed = False

    async def start_utterance(self) -> None:
        """Open an utterance; one still open (e.g. after a cancelled end) is abandoned."""
        if self._closed:
            raise RuntimeError("recognizer is closed")
        self._last_partial = ""
        await self._drop_remote()
        worker = await pin_worker() if self._decoder is None else None
        if worker is not None:
            try:
                handle = await worker.call(remote_start, self._spec, self._cmn)
            except BaseException:
                unpin(worker)
                raise
            self._remote = (worker, handle)
            self._in_utterance = True
            return
        if self._decoder is None:
            self._decoder = await run_cpu(self._pool.borrow, self._cmn)
        await run_cpu(self._start)

    async def _drop_remote(self) -> None:
        if self._remote is not None:
            (worker, handle), self._remote = self._remote, None
            self._in_utterance = False
            unpin(worker)
            with trio.move_on_after(CLOSE_BOUND, shield=True):
                await worker.call(remote_drop, handle)

    # The sync halves below run in the worker thread and flip `_in_utterance` right after the
    # decoder call, so the flag is exact even when a cancellation lands around the await.
    def _start(self) -> None:
        try:
            if self._in_utterance:
                self._decoder.end_utt()
                self._in_utterance = False
            self._decoder.start_utt()
        except RuntimeError as exc:
            raise SttError(f"pocketsphinx could not start an utterance: {exc}") from exc
        self._in_utterance = True

    async def feed(self, pcm: Int16Array) -> str | None:
        if not self._in_utterance:
            raise RuntimeError("feed() outside an utterance: call start_utterance() first")
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise ValueError(f"expected mono int16 PCM, got {pcm.dtype} with shape {pcm.shape}")
        if len(pcm) == 0:
            await trio.lowlevel.checkpoint()
            return None
        data = pcm.astype("<i2", copy=False).tobytes()
        if self._remote is not None:
            worker, handle = self._remote
            partial = await worker.call(remote_feed, handle, data)
        else:
            # In a thread, in GIL-sized pieces; inline (virtual clock) there is no loop to yield to.
            piece = GIL_PIECE_BYTES if compute_mode() == "thread" else len(data)
            partial = await run_cpu(self._process, data, piece)
        if partial and partial != self._last_partial:
            self._last_partial = partial
            return unscored(partial)
        return None

    def _process(self, data: bytes, piece: int = GIL_PIECE_BYTES) -> str:
        # Decode and read the hypothesis in one worker-thread hop (hyp() costs ~10 µs).
        # pocketsphinx holds the GIL for a whole `process_raw` call, so the batch goes in 20 ms
        # pieces: the event loop can take the GIL between them (~3 ms holds, not ~16 ms).
        # Measured, 2 threads decoding: the loop thread's wake-up lag p50 41-43 -> 15-19 ms,
        # p99 320-357 -> 109-152 ms. Same transcript: the decoder streams either way.
        try:
            for at in range(0, len(data), max(piece, 2)):
                self._decoder.process_raw(data[at : at + max(piece, 2)], False, False)
        except RuntimeError as exc:
            raise SttError(f"pocketsphinx failed to decode audio: {exc}") from exc
        return hypothesis(self._decoder)

    async def end_utterance(self) -> str:
        """The final transcript: a `Hypothesis` with each word's lattice posterior."""
        if not self._in_utterance:
            raise RuntimeError("end_utterance() without start_utterance()")
        if self._remote is not None:
            worker, handle = self._remote
            # The call is shielded: once sent, the worker finishes (and pools) the decoder.
            self._remote, self._in_utterance = None, False
            unpin(worker)
            text, self._cmn = await worker.call(remote_end, handle)
            return text
        return await run_cpu(self._finish)

    def _finish(self) -> str:
        self._in_utterance = False
        decoder, self._decoder = self._decoder, None
        try:
            decoder.end_utt()
        except RuntimeError as exc:
            raise SttError(f"pocketsphinx failed to finish the utterance: {exc}") from exc
        text, self._cmn = scored_hypothesis(decoder), decoder.get_cmn(False)
        # Back to the shared pool between utterances: decoders are needed per utterance being
        # spoken, not per connected session (a failed one is dropped, not pooled).
        self._pool.release(decoder)
        return text

    async def aclose(self) -> None:
        """Return a decoder still held to the pool. Never raises, even when cancelled."""
        if not self._closed:
            self._closed = True
            await self._drop_remote()
            decoder, self._decoder = self._decoder, None
            # A decoder with an open utterance is dropped: closing it would cost CPU here, and
            # aclose must be cheap and safe inside a cancelled scope.
            if decoder is not None and not self._in_utterance:
                self._pool.release(decoder)
            self._in_utterance = False
        await trio.lowlevel.cancel_shielded_checkpoint()
