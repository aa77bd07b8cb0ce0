"""The fast path for client frames (bargein/transports/websocket/frames.py) against wsproto
itself: the same bytes, cut at random places, give the same events from `FastFrames` over a
wsproto server connection as from a bare one — for whole text and binary frames, pings and
pongs between them, fragments, a close, bad UTF-8, unmasked and 64-bit-length frames — then
over real hypercorn, where a session's audio and reports take the fast path."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
import trio
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import (
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.frame_protocol import FrameProtocol
from wsproto.utilities import LocalProtocolError

from bargein.engines.base import Engines
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import connect, running
from bargein.transports.app import DemoServer
from bargein.transports.protocol import AudioIn, SessionStart, SessionStarted, Text, TurnStarted
from bargein.transports.websocket.frames import FastFrames, unmask
from bargein.transports.websocket.tcp import server_objects

HANG_GUARD = 30  # seconds; a guard against hangs, never a performance bound


def feed(connection: Any, chunks: list[bytes]) -> list[tuple[Any, ...]]:
    """What hypercorn makes of the events: whole messages (it joins a message's pieces, as
    wsproto hands a long frame over in pieces as it arrives), pings, pongs, closes."""
    seen: list[tuple[Any, ...]] = []
    parts: list[Any] = []
    for chunk in chunks:
        try:
            connection.receive_data(chunk)
        except LocalProtocolError:
            seen.append(("closed",))  # data after the connection closed
            break
        for event in connection.events():
            if isinstance(event, Message):
                parts.append(event.data)
                if event.message_finished:
                    joined = "".join(parts) if isinstance(event, TextMessage) else b"".join(parts)
                    seen.append((type(event).__name__, joined))
                    parts = []
            elif isinstance(event, Ping | Pong):
                seen.append((type(event).__name__, bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                seen.append(("close", event.code, event.reason))
            else:
                seen.append((type(event).__name__,))
    return seen


def client_frames(rng: random.Random, ok_only: bool) -> bytes:
    """A client's byte stream: mostly whole frames, now and then something else."""
    client = FrameProtocol(client=True, extensions=[])
    out = b""
    for _ in range(rng.randint(1, 40)):
        roll = rng.random()
        if roll < 0.45:
            sizes = [0, 1, 3, 125, 126, 640, 65535] + ([] if ok_only else [65536, 70000])
            out += client.send_data(rng.randbytes(rng.choice(sizes)))
        elif roll < 0.7:
            out += client.send_data(
                "".join(rng.choice("aé€😀 {}") for _ in range(rng.randint(0, 300)))
            )
        elif roll < 0.8:
            out += client.ping(rng.randbytes(rng.randint(0, 125)))
        elif roll < 0.9:
            out += client.pong(rng.randbytes(8))
        elif ok_only:
            continue
        elif roll < 0.93:  # a fragmented message, then more frames
            out += client.send_data(b"abc", fin=False) + client.send_data(b"def", fin=True)
        elif roll < 0.95:  # bad UTF-8 in a text frame
            out += _frame(0x81, b"\xff\xfe", masked=True)
        elif roll < 0.97:  # unmasked (a protocol error from a client)
            out += _frame(0x82, b"xy", masked=False)
        elif roll < 0.99:  # RSV1 without an extension
            out += _frame(0xC2, b"xy", masked=True)
        else:
            out += client.close(1000, "bye")
    return out


def _frame(b0: int, payload: bytes, *, masked: bool) -> bytes:
    assert len(payload) < 126
    if not masked:
        return bytes([b0, len(payload)]) + payload
    mask = b"\x01\x02\x03\x04"
    return bytes([b0, 0x80 | len(payload)]) + mask + unmask(payload, mask)


def cut(data: bytes, rng: random.Random) -> list[bytes]:
    chunks, pos = [], 0
    while pos < len(data):
        step = rng.choice([1, 2, 5, 64, 700, 5000, 100000])
        chunks.append(data[pos : pos + step])
        pos += step
    return chunks


@pytest.mark.parametrize("seed", range(60))
def test_fast_frames_give_exactly_wsproto_s_events(seed: int) -> None:
    rng = random.Random(seed)
    data = client_frames(rng, ok_only=seed % 3 == 0)
    chunks = cut(data, rng)
    plain = feed(Connection(ConnectionType.SERVER), chunks)
    fast_connection = FastFrames(Connection(ConnectionType.SERVER))
    fast = feed(fast_connection, chunks)
    assert fast == plain
    if seed % 3 == 0:  # nothing but whole frames: wsproto parsed only the pings and pongs
        assert not fast_connection.slow
        data_frames = sum(e[0] in ("TextMessage", "BytesMessage") for e in plain)
        assert fast_connection.fast_frames == data_frames


def test_a_close_hands_everything_after_it_to_wsproto() -> None:
    client = FrameProtocol(client=True, extensions=[])
    fast = FastFrames(Connection(ConnectionType.SERVER))
    fast.receive_data(client.send_data(b"ab") + client.close(1000, "done") + client.send_data(b"c"))
    events = feed(fast, [b""])
    assert events == [("BytesMessage", b"ab"), ("close", 1000, "done")]
    assert fast.slow and fast.fast_frames == 1


def test_end_of_stream_is_wsproto_s_abnormal_close() -> None:
    client = FrameProtocol(client=True, extensions=[])
    fast = FastFrames(Connection(ConnectionType.SERVER))
    fast.receive_data(client.send_data(b"whole") + client.send_data(b"half")[:4])
    events = feed(fast, [b"", None])  # type: ignore[list-item]
    assert events == [("BytesMessage", b"whole"), ("close", 1006, None)]


def test_unmask_is_rfc6455_masking() -> None:
    mask = bytes([0x37, 0xFA, 0x21, 0x3D])
    # RFC 6455 5.7: "Hello" masked with 37 fa 21 3d.
    assert unmask(bytes.fromhex("7f9f4d5158"), mask) == b"Hello"
    assert unmask(b"", mask) == b""
    data = random.Random(1).randbytes(1001)
    assert unmask(unmask(data, mask), mask) == data


# -- real hypercorn -------------------------------------------------------------------------


def scripted(_: object) -> Engines:
    return Engines(
        stt=ScriptedStt(default="go forward"),
        planner=ScriptedPlanner(["Going."]),
        tts=ScriptedTts(16000, ms_per_char=10.0),
    )


def fast_frames_of(ws: object) -> FastFrames | None:
    for owner in server_objects(ws):
        connection = getattr(owner, "connection", None)
        while connection is not None:
            if isinstance(connection, FastFrames):
                return connection
            connection = getattr(connection, "_connection", None)  # under liveness's tap
    return None


async def test_a_session_s_frames_take_the_fast_path_over_hypercorn() -> None:
    server = DemoServer(scripted)
    served: list[Any] = []
    handle = server.sessions.handle

    async def spy(ws: Any, *, authorized: bool = False) -> None:
        served.append(ws)
        await handle(ws, authorized=authorized)

    server.sessions.handle = spy  # type: ignore[method-assign]
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, SessionStart(16000)) as client:
                assert client.of(SessionStarted)
                for _ in range(20):
                    await client.send(AudioIn(np.zeros(320, np.int16)))
                await client.send(Text("hello"))
                await client.wait_for(lambda m: isinstance(m, TurnStarted))
                fast = fast_frames_of(served[0])
                # session.start, 20 audio frames and the text, each parsed here.
                assert fast is not None and fast.fast_frames >= 22 and not fast.slow
