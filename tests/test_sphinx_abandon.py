"""An utterance abandoned in a worker process (the session closed, or a new utterance started
while one was open) gives its decoder back to the worker's pool: rebuilding one costs that
worker ~0.3-0.5 s, during which every utterance pinned to it waits (docs/engines.md)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from bargein.engines.embedded import SphinxStt
from bargein.engines.embedded.sphinx_decoders import remote_warm
from bargein.runtime import compute
from bargein.runtime.compute import close_workers, set_worker_processes

FRAME = 320


@pytest.fixture
def one_worker() -> Iterator[None]:
    set_worker_processes(1)
    yield
    close_workers()
    set_worker_processes(0)


async def _idle(stt: SphinxStt) -> int:
    (worker,) = compute._workers
    return await worker.call(remote_warm, stt._spec, 0)  # builds none: reads the idle count


def _speech() -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal(16000) * 3000).astype(np.int16)


async def test_a_session_closed_mid_utterance_returns_the_decoder(one_worker: None) -> None:
    stt = SphinxStt(keyphrases={"forward": 1.9e-10})  # keyword decoders load in ~0.1 s
    await stt.warm(1)
    assert await _idle(stt) == 1
    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    assert await _idle(stt) == 0
    await recognizer.feed(_speech())
    await recognizer.aclose()  # the client left while it spoke
    assert await _idle(stt) == 1  # pooled again, not dropped


async def test_a_restarted_utterance_reuses_the_decoder(one_worker: None) -> None:
    stt = SphinxStt(keyphrases={"forward": 2.1e-10})
    await stt.warm(2)
    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    await recognizer.feed(_speech())
    await recognizer.start_utterance()  # the one still open is abandoned
    await recognizer.feed(_speech())
    assert await recognizer.end_utterance() is not None
    await recognizer.aclose()
    assert await _idle(stt) == 2  # both back: the abandoned one was pooled, not dropped
    assert stt.decoders_built == 0  # nothing loaded in this process either
