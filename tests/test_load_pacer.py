"""`bench load`'s pacer (load_client.Pacer) on trio's mock clock: every client's frame k of an
utterance goes out at the end of frame k - 1 (the first at the utterance's start), never
before, within one quantum after; an utterance ends (its speech end recorded) a whole cycle
after it began; a failed write ends that client's stream with the error, not the others'."""

from __future__ import annotations

import numpy as np
import pytest
import trio
import trio.testing

from bargein.benchmarks.load_client import FRAME, RATE, SPEECH_END_S, ClientResult, Pacer
from bargein.benchmarks.raw_websocket import ConnectionClosed


class FakeSocket:
    def __init__(self, fail_after: int | None = None) -> None:
        self.sent: list[tuple[float, bytes]] = []
        self.fail_after = fail_after

    def write(self, data: bytes) -> None:
        if self.fail_after is not None and len(self.sent) >= self.fail_after:
            raise ConnectionClosed("gone")
        self.sent.append((trio.current_time(), data))


PCM = (np.arange(FRAME * 3 + 100) % 50).astype(np.int16)  # 3 whole frames and a short one
GAP_S = 2 * FRAME / RATE  # two frames of silence


async def _stream(pacer: Pacer, ws: FakeSocket, result: ClientResult, utterances: int) -> None:
    await pacer.stream(ws, PCM, utterances, GAP_S, result)  # type: ignore[arg-type]


async def test_frames_go_out_at_their_times_never_before(autojump_clock: object) -> None:
    pacer = Pacer(quantum=0.001)
    ws, result = FakeSocket(), ClientResult()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(pacer.run)
        await trio.sleep(0.5)
        began = trio.current_time()
        await _stream(pacer, ws, result, 2)
        nursery.cancel_scope.cancel()
    sizes = [FRAME, FRAME, FRAME, 100, FRAME, FRAME]  # samples per frame of one utterance
    due = np.concatenate([[0.0], np.cumsum(sizes)[:-1] / RATE])
    cycle = sum(sizes) / RATE
    expected = [began + u * cycle + d for u in range(2) for d in due]
    times = [t for t, _ in ws.sent]
    assert len(times) == len(expected)
    for at, when in zip(times, expected, strict=True):
        assert when <= at <= when + 0.001 + 1e-9
    # Each frame is one masked binary message of the recording (then silence), in order.
    payloads = []
    for _, frame in ws.sent:
        assert frame[0] == 0x82 and frame[1] & 0x80
        head = 4 if frame[1] & 0x7F == 126 else 2
        key, body = frame[head : head + 4], frame[head + 4 :]
        payloads.append(bytes(b ^ key[i % 4] for i, b in enumerate(body)))
    one = PCM.tobytes() + bytes(int(GAP_S * RATE) * 2)
    assert b"".join(payloads) == one * 2
    assert result.speech_ends == pytest.approx([began + SPEECH_END_S, began + cycle + SPEECH_END_S])
    assert result.active_s == pytest.approx(2 * cycle)


async def test_a_failed_write_ends_only_that_stream(autojump_clock: object) -> None:
    pacer = Pacer()
    broken, fine = FakeSocket(fail_after=2), FakeSocket()
    results = ClientResult(), ClientResult()
    failures: list[BaseException] = []

    async def run(ws: FakeSocket, result: ClientResult) -> None:
        try:
            await _stream(pacer, ws, result, 1)
        except ConnectionClosed as exc:
            failures.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(pacer.run)
        async with trio.open_nursery() as clients:
            clients.start_soon(run, broken, results[0])
            clients.start_soon(run, fine, results[1])
        nursery.cancel_scope.cancel()
    assert len(failures) == 1 and len(broken.sent) == 2
    assert len(fine.sent) == 6 and len(results[1].speech_ends) == 1
    assert results[0].speech_ends == []
