"""`bench load`'s own RFC 6455 client (bargein/benchmarks/raw_websocket.py) and its pacer: the
frames it builds are what wsproto (an independent implementation) reads, it parses what a
wsproto server sends, it refuses what a server must not send, and against real hypercorn and
our `/ws` it streams a recording in real time, gets every reply, answers the server's pings
and closes with 1000."""

from __future__ import annotations

import os

import numpy as np
import pytest
import trio
import wsproto
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

from bargein.benchmarks.load import _scripted_factory
from bargein.benchmarks.load_client import ClientResult, Pacer, _client, _latencies
from bargein.benchmarks.raw_websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    HandshakeRefused,
    ProtocolViolation,
    RawWebSocket,
    ServerFrames,
    accept_key,
    check_handshake_response,
    client_frame,
    client_frames,
    handshake_request,
)
from bargein.testing.audio import shared_audio_dir
from bargein.testing.web import running
from bargein.transports.app import DemoServer
from bargein.transports.websocket import ConnectionLimits

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound


def _wsproto_server() -> wsproto.WSConnection:
    """A wsproto server connection past its handshake, fed by a wsproto client's request."""
    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="x", target="/ws")))
    request = next(server.events())
    assert isinstance(request, Request)
    server.send(AcceptConnection())
    return server


@pytest.mark.parametrize("size", [0, 1, 125, 126, 640, 65535, 65536])
def test_our_masked_frames_are_what_wsproto_reads(size: int) -> None:
    server = _wsproto_server()
    payload = os.urandom(size)
    server.receive_data(client_frame(OP_BINARY, payload))
    server.receive_data(client_frame(OP_TEXT, "héllo".encode()))
    events = list(server.events())
    assert [type(e) for e in events] == [BytesMessage, TextMessage]
    assert events[0].data == payload and events[0].message_finished
    assert events[1].data == "héllo"


def test_each_frame_gets_its_own_key_and_a_batch_masks_as_one_by_one() -> None:
    payloads = [os.urandom(640) for _ in range(5)] + [os.urandom(200), b"", os.urandom(640)]
    keys = os.urandom(4 * len(payloads))
    batch = client_frames(OP_BINARY, payloads, keys)
    single = [client_frame(OP_BINARY, p, keys[4 * i : 4 * i + 4]) for i, p in enumerate(payloads)]
    assert batch == single
    fresh = client_frames(OP_BINARY, payloads)
    assert len({f[4:8] for f in fresh[:5]}) == 5  # the masking key of each 640-byte frame
    server = _wsproto_server()
    for frame in fresh:
        server.receive_data(frame)
    assert [e.data for e in server.events()] == payloads
    with pytest.raises(ValueError):
        client_frames(OP_BINARY, payloads, keys[:-1])


def test_server_frames_split_anywhere_parse_to_the_same_messages() -> None:
    server = _wsproto_server()
    wire = b"".join(
        [
            server.send(TextMessage('{"type":"x"}')),
            server.send(BytesMessage(b"\x01" * 700)),
            server.send(BytesMessage(b"\x02" * 70000)),  # 64-bit length
            server.send(TextMessage("frag", message_finished=False)),
            server.send(Ping(b"p1")),  # a control frame between fragments (RFC 6455 5.4)
            server.send(TextMessage("mented", message_finished=True)),
            server.send(CloseConnection(1000, "bye")),
        ]
    )
    expected = [
        (OP_TEXT, b'{"type":"x"}'),
        (OP_BINARY, b"\x01" * 700),
        (OP_BINARY, b"\x02" * 70000),
        (OP_PING, b"p1"),
        (OP_TEXT, b"fragmented"),
        (OP_CLOSE, (1000).to_bytes(2, "big") + b"bye"),
    ]
    assert ServerFrames().feed(wire) == expected
    for step in (1, 3, 1000):
        parser = ServerFrames()
        got = []
        for i in range(0, len(wire), step):
            got += parser.feed(wire[i : i + step])
        assert got == expected


@pytest.mark.parametrize(
    ("wire", "why"),
    [
        (bytes([0x82, 0x80 | 1]) + b"kkkk" + b"x", "masked"),
        (bytes([0xC2, 1]) + b"x", "RSV"),
        (bytes([0x83, 1]) + b"x", "opcode"),
        (bytes([0x80, 1]) + b"x", "continuation"),
        (bytes([0x09, 1]) + b"x", "control"),  # a ping without FIN
        (bytes([0x89, 126, 0, 126]) + b"x" * 126, "control"),
        (bytes([0x01, 1]) + b"a" + bytes([0x82, 1]) + b"b", "inside"),
    ],
)
def test_what_a_server_must_not_send_is_a_violation(wire: bytes, why: str) -> None:
    with pytest.raises(ProtocolViolation, match=why):
        ServerFrames().feed(wire)


def test_a_message_past_the_bound_is_a_violation() -> None:
    parser = ServerFrames(max_message=1000)
    with pytest.raises(ProtocolViolation):
        parser.feed(bytes([0x82, 126]) + (1001).to_bytes(2, "big"))
    parser = ServerFrames(max_message=1000)
    with pytest.raises(ProtocolViolation):
        fragment = (600).to_bytes(2, "big")
        first, last = bytes([0x02, 126]) + fragment, bytes([0x80, 126]) + fragment
        parser.feed(first + b"a" * 600 + last + b"b" * 600)


def test_handshake_accept_is_rfc6455s_and_a_refusal_says_its_status() -> None:
    # The example of RFC 6455 1.3.
    assert accept_key(b"dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    request = handshake_request("h:1", "/ws", key)
    assert b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" in request
    ok = (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )
    check_handshake_response(ok.encode(), key)
    with pytest.raises(HandshakeRefused) as refused:
        check_handshake_response(b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0", key)
    assert refused.value.status == 403
    with pytest.raises(HandshakeRefused, match="Accept"):
        check_handshake_response(ok.replace("s3pP", "AAAA").encode(), key)
    with pytest.raises(HandshakeRefused, match="Upgrade"):
        check_handshake_response(ok.replace("Upgrade: websocket", "X: y").encode(), key)
    with pytest.raises(HandshakeRefused, match="not an HTTP"):
        check_handshake_response(b"SSH-2.0", key)


async def test_a_refused_upgrade_raises_with_its_status() -> None:
    with trio.fail_after(HANG_GUARD):
        async with running(DemoServer(_scripted_factory)) as port:
            with pytest.raises(HandshakeRefused) as refused:
                await RawWebSocket.connect("127.0.0.1", port, "/nowhere")
    assert refused.value.status >= 400


async def test_streams_a_recording_against_hypercorn_answers_pings_and_closes_1000() -> None:
    """Two speakers through one pacer against the real server: every utterance answered with
    reply audio; with pings every 0.1 s and a 1 s pong timeout the server would reset a
    client that did not answer them; the close handshake gives 1000 back."""
    pcm = np.frombuffer((shared_audio_dir() / "pocketsphinx_goforward.raw").read_bytes(), "<i2")
    limits = ConnectionLimits(ping_interval=0.1, pong_timeout=1.0)
    server = DemoServer(_scripted_factory, limits=limits)
    results = [ClientResult(), ClientResult()]
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, trio.open_nursery() as nursery:
            pacer = Pacer()
            nursery.start_soon(pacer.run)
            async with trio.open_nursery() as clients:
                for delay, result in zip((0.0, 0.7), results, strict=True):
                    url = f"ws://127.0.0.1:{port}/ws"
                    clients.start_soon(_client, url, pcm, 2, 1.0, delay, result, pacer)
            nursery.cancel_scope.cancel()
    stats = server.sessions.stats
    assert stats.slow_consumers == 0  # every ping was answered in time
    for result in results:
        assert result.errors == [] and result.connected
        assert result.pings_answered > 0
        assert len(result.speech_ends) == 2
        answered, latencies = _latencies(result)
        assert answered == 2 and all(lat > 0 for lat in latencies)
        assert result.messages["turn.started"] == 2
        assert result.active_s == pytest.approx(2 * (len(pcm) / 16000 + 1.0))


async def test_the_server_sees_a_normal_close_and_pings_get_pongs() -> None:
    limits = ConnectionLimits(ping_interval=0.05, pong_timeout=5.0)
    with trio.fail_after(HANG_GUARD):
        async with running(DemoServer(_scripted_factory, limits=limits)) as port:
            ws = await RawWebSocket.connect("127.0.0.1", port, "/ws")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(ws.run_writer)
                ws.send_text('{"type": "session.start", "v": 1, "sample_rate": 16000}')
                (opcode, payload), *_ = await ws.receive()
                assert opcode == OP_TEXT and b'"session.started"' in payload
                # Silence keeps the session (and the pings to it) going; our pongs answer.
                frame = b"\x00" * 640
                for _ in range(20):
                    ws.write(client_frame(OP_BINARY, frame))
                    await trio.sleep(0.02)
                ws.write(client_frame(OP_PING, b"ours"))
                pong = None
                while pong is None:
                    pong = next((p for op, p in await ws.receive() if op == OP_PONG), None)
                assert pong == b"ours"
                nursery.cancel_scope.cancel()
            await ws.aclose()
    assert ws.close_received == 1000
    with pytest.raises(Exception, match="closed"):
        ws.write(b"x")
