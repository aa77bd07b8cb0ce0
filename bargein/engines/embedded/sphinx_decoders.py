"""pocketsphinx decoders: building one from a configuration, the process-wide pools of idle
decoders, and the functions a worker process runs to decode in its own pools (see
`bargein.runtime.compute.pin_worker`: pocketsphinx holds the GIL, so a second core needs a
second process)."""

from __future__ import annotations

import itertools
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bargein.engines.base import Hypothesis, WordConfidence
from bargein.engines.errors import SttError

ConfigValue = str | int | float | bool | None
_SEARCH = "bargein"


@dataclass(frozen=True)
class DecoderSpec:
    """Everything that makes a decoder; picklable, so a worker process can build it too."""

    config: dict[str, ConfigValue]
    keyphrases: dict[str, float] | None
    grammar: str | None
    max_idle: int
    key: str = field(init=False)

    def __post_init__(self) -> None:
        key = repr((sorted(self.config.items()), self.keyphrases, self.grammar))
        object.__setattr__(self, "key", key)


def build_decoder(spec: DecoderSpec) -> Any:
    from pocketsphinx import Config, Decoder

    config = Config(**spec.config)
    try:
        decoder = Decoder(config)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"pocketsphinx rejected the configuration {spec.config}") from exc
    if spec.keyphrases is not None:
        _add_keyphrases(decoder, spec.keyphrases)
    elif spec.grammar is not None:
        try:
            decoder.add_jsgf_string(_SEARCH, spec.grammar)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                "pocketsphinx could not use the JSGF grammar (syntax error, or a word "
                "missing from the dictionary)"
            ) from exc
        decoder.activate_search(_SEARCH)
    return decoder


def _add_keyphrases(decoder: Any, phrases: Mapping[str, float]) -> None:
    # A keyword file is the only way to give each phrase its own threshold.
    fd, path = tempfile.mkstemp(suffix=".kws", text=True)
    try:
        with os.fdopen(fd, "w") as f:
            for phrase, threshold in phrases.items():
                f.write(f"{phrase} /{threshold:g}/\n")
        try:
            decoder.add_kws(_SEARCH, path)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                f"pocketsphinx could not use the keyphrases {list(phrases)} "
                "(a word missing from the dictionary?)"
            ) from exc
    finally:
        os.unlink(path)
    decoder.activate_search(_SEARCH)


def hypothesis(decoder: Any) -> str:
    hyp = decoder.hyp()
    # Keyword mode pads and double-spaces its phrases; normalise every mode the same way.
    return " ".join(hyp.hypstr.split()) if hyp is not None else ""


SPHINX_MEASURE = "pocketsphinx.posterior"
_ALTERNATE = re.compile(r"\(\d+\)$")  # "was(2)": the dictionary's second pronunciation


def unscored(text: str) -> str:
    """A partial (or a final whose words could not be scored) as a `Hypothesis` without word
    confidences that says so: pocketsphinx's partials carry none (no lattice before the
    utterance ends), which the backchannel classifier must know (`bargein.decide.confidence`).
    '' stays ''."""
    return Hypothesis(text, (), SPHINX_MEASURE, scored_partials=False) if text else text


def scored_hypothesis(decoder: Any) -> str:
    """The final transcript (after `end_utt`) as a `Hypothesis`: each word with its posterior
    probability in the utterance's lattice (pocketsphinx's confidence; `bestpath` builds the
    lattice, ~0.05 ms to read). Without word confidences (`unscored`) when the word
    segmentation does not line up with the text (multi-word keyword phrases). Partials have no
    lattice, hence no confidence: every transcript says so (`Hypothesis.scored_partials`)."""
    text = hypothesis(decoder)
    if not text:
        return text
    words = [
        WordConfidence(_ALTERNATE.sub("", seg.word), min(1.0, max(0.0, float(seg.prob))))
        for seg in decoder.seg() or ()
        if not seg.word.startswith(("<", "[", "+"))  # <s> </s> <sil> [NOISE] ++UH++
    ]
    if [w.text for w in words] != text.split():
        return unscored(text)
    return Hypothesis(text, tuple(words), SPHINX_MEASURE, scored_partials=False)


class DecoderPool:
    """Idle decoders of one configuration; `acquire`/`release` are called from worker threads."""

    def __init__(self, make: Any, max_idle: int) -> None:
        self._make = make
        self.max_idle = max_idle
        self._idle: list[Any] = []
        self._lock = threading.Lock()
        self.built = 0  # decoders loaded over the process's life (each ~0.3 s of CPU, ~90 MB)

    def acquire(self) -> Any:
        with self._lock:
            if self._idle:
                return self._idle.pop()
            self.built += 1
        return self._make()  # outside the lock: loading takes ~0.3 s and may run concurrently

    def borrow(self, cmn: str | None) -> Any:
        """A decoder in the state of a fresh one, with the session's own CMN estimate if it has
        one. The front end adapts to what a decoder heard (live CMN, noise estimate) and keeps
        it between utterances; a decoder shared between sessions must not carry one session's
        channel into another's (it changes what is recognised, and made virtual-clock runs
        depend on what ran before). `reinit_feat` resets it (~0.1 ms)."""
        decoder = self.acquire()
        decoder.reinit_feat()
        if cmn is not None:
            decoder.set_cmn(cmn)
        return decoder

    def release(self, decoder: Any) -> None:
        with self._lock:
            if len(self._idle) < self.max_idle:
                self._idle.append(decoder)

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)


# One pool per configuration for the whole process: engines are built per session (the engines
# factory runs for every connection), and a pool per engine was never reused by another session.
_pools: dict[str, DecoderPool] = {}
_pools_lock = threading.Lock()


def shared_pool(spec: DecoderSpec) -> DecoderPool:
    """This process's pool for ``spec``'s configuration."""
    with _pools_lock:
        pool = _pools.get(spec.key)
        if pool is None:
            pool = _pools[spec.key] = DecoderPool(lambda: build_decoder(spec), spec.max_idle)
        pool.max_idle = max(pool.max_idle, spec.max_idle)
        return pool


# -- worker side: called in a worker process through `CpuWorker.call` ------------------------

_open: dict[int, tuple[DecoderPool, Any]] = {}
_handles = itertools.count(1)


def remote_warm(spec: DecoderSpec, count: int) -> int:
    """Have ``count`` idle decoders in this worker's pool (built now); how many are idle."""
    pool = shared_pool(spec)
    pool.max_idle = max(pool.max_idle, count)
    made = [pool.acquire() for _ in range(max(0, count - pool.idle))]
    for decoder in made:
        pool.release(decoder)
    return pool.idle


def remote_start(spec: DecoderSpec, cmn: str | None) -> int:
    """Borrow a decoder from this worker's pool and open an utterance; its handle."""
    pool = shared_pool(spec)
    decoder = pool.borrow(cmn)
    try:
        decoder.start_utt()
    except RuntimeError as exc:
        raise SttError(f"pocketsphinx could not start an utterance: {exc}") from exc
    handle = next(_handles)
    _open[handle] = (pool, decoder)
    return handle


def remote_feed(handle: int, data: bytes) -> str:
    _, decoder = _open[handle]
    try:
        decoder.process_raw(data, False, False)
    except RuntimeError as exc:
        raise SttError(f"pocketsphinx failed to decode audio: {exc}") from exc
    return hypothesis(decoder)


def remote_end(handle: int) -> tuple[str, str]:
    """The final transcript, and the session's CMN estimate to carry to its next utterance."""
    pool, decoder = _open.pop(handle)
    try:
        decoder.end_utt()
    except RuntimeError as exc:
        raise SttError(f"pocketsphinx failed to finish the utterance: {exc}") from exc
    text, cmn = scored_hypothesis(decoder), decoder.get_cmn(False)
    pool.release(decoder)
    return text, cmn


def remote_drop(handle: int) -> None:
    """Close an abandoned utterance (the session left or restarted it) and pool its decoder:
    `end_utt` costs ~10-20 ms here, in the worker, where rebuilding a decoder for the next
    utterance would cost this worker 0.3-0.5 s. A decoder whose `end_utt` fails is dropped."""
    opened = _open.pop(handle, None)
    if opened is None:
        return
    pool, decoder = opened
    try:
        decoder.end_utt()
    except RuntimeError:
        return
    pool.release(decoder)  # `borrow` resets its front end and CMN for the next session
