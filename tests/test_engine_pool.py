"""Engine work in worker processes (pocketsphinx holds the GIL: threads cannot use a second
core). Real pocketsphinx in real child processes."""

from __future__ import annotations

import operator
import time
from collections.abc import Iterator

import numpy as np
import pytest
import trio

from bargein.engines.embedded import SphinxStt, sphinx_decoders
from bargein.runtime import compute
from bargein.runtime.compute import close_workers, set_compute_mode, set_worker_processes
from bargein.testing.audio import shared_audio_dir

FRAME = 320


@pytest.fixture(autouse=True)
def own_decoder_pools(monkeypatch: pytest.MonkeyPatch) -> None:
    # The decoder pools are process-wide by design (shared by every session), so the
    # `decoders_built` counts below would include decoders that earlier test files built in
    # this process for the same configuration; each test here starts with none.
    monkeypatch.setattr(sphinx_decoders, "_pools", {})


@pytest.fixture
def two_workers() -> Iterator[None]:
    set_worker_processes(2)
    yield
    close_workers()
    set_worker_processes(0)


def goforward() -> np.ndarray:
    raw = (shared_audio_dir() / "pocketsphinx_goforward.raw").read_bytes()
    return np.frombuffer(raw, "<i2").astype(np.int16)


async def recognize(stt: SphinxStt, pcm: np.ndarray) -> str:
    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    for i in range(0, len(pcm), FRAME):
        await recognizer.feed(pcm[i : i + FRAME])
    text = await recognizer.end_utterance()
    await recognizer.aclose()
    return text


async def test_utterances_decode_in_worker_processes(two_workers: None) -> None:
    stt = SphinxStt(keyphrases=["forward"])
    pcm = goforward()
    results: list[str] = []

    async def one() -> None:
        results.append(await recognize(stt, pcm))

    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(one)
    assert results == ["forward"] * 3
    assert len(compute._workers) == 2  # both started, no more
    assert stt.decoders_built == 0  # nothing was loaded in this process
    assert all(w.pinned == 0 for w in compute._workers)


async def test_a_cancelled_call_leaves_the_worker_in_step(two_workers: None) -> None:
    # The round trip is shielded: the reply of a cancelled call must not be read by the next.
    stt = SphinxStt(keyphrases=["forward"])
    pcm = goforward()
    recognizer = stt.recognizer()
    await recognizer.start_utterance()
    with trio.CancelScope() as scope:
        scope.cancel()
        await recognizer.feed(pcm[:FRAME])
    for i in range(0, len(pcm), FRAME):
        await recognizer.feed(pcm[i : i + FRAME])
    assert await recognizer.end_utterance() == "forward"
    await recognizer.start_utterance()
    await recognizer.aclose()  # closed mid-utterance: dropped in the worker, worker unpinned
    assert all(w.pinned == 0 for w in compute._workers)
    assert await recognize(stt, pcm) == "forward"


async def test_a_worker_error_is_raised_in_the_caller(two_workers: None) -> None:
    stt = SphinxStt(grammar="#JSGF V1.0; grammar g; public <a> = zzxqqy;")
    recognizer = stt.recognizer()
    with pytest.raises(ValueError, match="JSGF"):
        await recognizer.start_utterance()
    await recognizer.aclose()
    assert all(w.pinned == 0 for w in compute._workers)


async def test_virtual_clock_runs_stay_in_process(
    two_workers: None, autojump_clock: trio.abc.Clock
) -> None:
    set_compute_mode("inline")
    try:
        stt = SphinxStt(keyphrases={"forward": 4.5e-10})
        assert await recognize(stt, goforward()) == "forward"
        assert compute._workers == [] and stt.decoders_built == 1
    finally:
        set_compute_mode("thread")


async def test_a_call_cancelled_while_the_worker_runs_it_still_takes_its_reply() -> None:
    worker = compute.CpuWorker()
    try:
        with trio.CancelScope() as scope:
            async with trio.open_nursery() as nursery:

                async def cancel_once_sent() -> None:
                    while not worker.in_flight:  # the call is under way in the worker
                        await trio.lowlevel.checkpoint()
                    scope.cancel()

                nursery.start_soon(cancel_once_sent)
                await worker.call(time.sleep, 0.2)
        assert scope.cancelled_caught
        # Without the shield the sleep's reply (None) would still be in the pipe, read here.
        assert await worker.call(operator.add, 1, 2) == 3
    finally:
        worker.close()


async def test_calls_from_several_tasks_are_in_flight_at_once_and_get_their_own_replies() -> None:
    # Pipelined: the next request waits in the worker's pipe while it runs the one before, so
    # the worker never idles while the parent's loop gets round to sending (the parent is busy
    # with every session's sockets).
    worker = compute.CpuWorker()
    try:
        results: dict[int, object] = {}

        async def one(i: int) -> None:
            await worker.call(time.sleep, 0.05)
            results[i] = await worker.call(operator.mul, i, 10)

        async with trio.open_nursery() as nursery:
            for i in range(4):
                nursery.start_soon(one, i)
        assert results == {i: 10 * i for i in range(4)}
        assert worker.max_in_flight == 4 and worker.in_flight == 0
    finally:
        worker.close()


async def test_warm_loads_each_workers_share_of_decoders(two_workers: None) -> None:
    from bargein.engines.embedded.sphinx_decoders import remote_warm

    stt = SphinxStt(keyphrases=["go forward"])  # keyword decoders load in ~0.1 s
    await stt.warm(3)
    idle = [await w.call(remote_warm, stt._spec, 0) for w in compute._workers]
    assert idle == [2, 2]  # ceil(3 / 2) each, where utterances will be decoded
    assert stt.decoders_built == 0  # none in this process


def test_a_batch_is_decoded_in_20_ms_pieces_so_the_loop_gets_the_gil_between() -> None:
    from bargein.engines.embedded.sphinx_stt import SphinxRecognizer

    class Decoder:
        def __init__(self) -> None:
            self.pieces: list[int] = []

        def process_raw(self, data: bytes, no_search: bool, full_utt: bool) -> None:
            self.pieces.append(len(data))

        def hyp(self) -> None:
            return None

    recognizer = SphinxRecognizer(SphinxStt(keyphrases=["go forward"])._spec)
    recognizer._decoder = decoder = Decoder()
    assert recognizer._process(bytes(3200 + 320)) == ""
    assert decoder.pieces == [640] * 5 + [320]
