"""Hostile `/v1/realtime` clients against the real hypercorn server (docs/realtime.md): a field
of the wrong JSON type, a number too large for a float, an empty binary frame. Each gets the
documented `error` event (its code and `param`), never `server_error` (our bug), and the
connection goes on."""

from __future__ import annotations

import json
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from bargein.testing.web import running
from bargein.transports.app import DemoServer

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound
TD = "session.audio.input.turn_detection"


async def next_event(ws: WebSocketConnection, kind: str) -> dict[str, Any]:
    while True:
        event = json.loads(await ws.get_message())
        if event["type"] == kind:
            return dict(event)


def update(audio_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "session.update", "session": {"audio": {"input": audio_input}}}


def message(role: Any, part_type: Any = "input_text") -> dict[str, Any]:
    part = {"type": part_type, "text": "hi"}
    return {"type": "conversation.item.create",
            "item": {"type": "message", "role": role, "content": [part]}}


HOSTILE: list[tuple[str, str | bytes, str, str | None]] = [
    ("empty binary frame", b"", "invalid_event", None),
    ("role a list", json.dumps(message(["user"])), "invalid_value", "item.role"),
    ("role an object", json.dumps(message({"a": 1})), "invalid_value", "item.role"),
    ("part type a list", json.dumps(message("user", ["input_text"])), "unsupported",
     "item.content[0].type"),
    ("part type an object", json.dumps(message("user", {})), "unsupported",
     "item.content[0].type"),
    ("format type a list", json.dumps(update({"format": {"type": ["audio/pcm"]}})),
     "invalid_value", "session.audio.input.format.type"),
    ("eagerness an object",
     json.dumps(update({"turn_detection": {"type": "semantic_vad", "eagerness": {}}})),
     "invalid_value", f"{TD}.eagerness"),
    ("threshold beyond a float",
     json.dumps(update({"turn_detection": {"type": "server_vad", "threshold": 10**400}})),
     "invalid_value", f"{TD}.threshold"),
    ("speed beyond a float",
     json.dumps({"type": "session.update", "session": {"audio": {"output": {"speed": -10**400}}}}),
     "invalid_value", "session.audio.output.speed"),
]


@pytest.mark.parametrize(("frame", "code", "param"), [h[1:] for h in HOSTILE],
                         ids=[h[0] for h in HOSTILE])
async def test_a_hostile_field_gets_its_error_and_the_connection_goes_on(
    frame: str | bytes, code: str, param: str | None
) -> None:
    server = DemoServer()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, open_websocket_url(
            f"ws://127.0.0.1:{port}/v1/realtime"
        ) as ws:
            await next_event(ws, "session.created")
            await ws.send_message(frame)
            error = (await next_event(ws, "error"))["error"]
            # Still served: the next event is answered.
            await ws.send_message(json.dumps({"type": "session.update", "event_id": "ok",
                                              "session": {"instructions": "be brief"}}))
            updated = await next_event(ws, "session.updated")
    assert (error["code"], error.get("param")) == (code, param), error
    assert error["type"] == "invalid_request_error"
    assert updated["session"]["instructions"] == "be brief"
    assert server.realtime.stats.errors == {code: 1}


async def test_a_client_that_vanishes_while_idle_is_found_and_its_slot_freed() -> None:
    # The client reads and answers pings until the connection is quiet (nothing to send),
    # then vanishes without a FIN (a partition, a stopped process). Pings went out only after
    # output, so an idle connection was never checked and held its slot for ever.
    from wsproto import ConnectionType, WSConnection
    from wsproto.events import AcceptConnection, Ping, Request, TextMessage

    from bargein.transports.websocket.limits import ConnectionLimits

    limits = ConnectionLimits(ping_interval=0.2, pong_timeout=1.0, keepalive_interval=1.0)
    server = DemoServer(limits=limits)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            client = WSConnection(ConnectionType.CLIENT)
            await stream.send_all(client.send(Request(host=f"127.0.0.1:{port}",
                                                      target="/v1/realtime")))
            created = pongs = 0
            while True:
                with trio.move_on_after(0.3) as idle:  # nothing for 0.3 s: quiet
                    client.receive_data(await stream.receive_some(65536))
                if idle.cancelled_caught and created and pongs:
                    break  # answered a ping, and now nothing comes: idle
                for event in client.events():
                    if isinstance(event, TextMessage):
                        created += '"conversation.created"' in event.data
                    elif isinstance(event, Ping):
                        pongs += 1
                        await stream.send_all(client.send(event.response()))
                    else:
                        assert isinstance(event, AcceptConnection), event
            assert server.realtime.active == 1
            # Vanished: reads nothing, answers nothing, sends no FIN.
            while True:  # polled: the server's count is the verdict
                if not server.realtime.active:
                    break
                await trio.sleep(0.1)
            await stream.aclose()
    assert server.realtime.stats.slow_consumers == 1


def test_tiny_manual_mode_appends_hold_their_samples_not_an_object_each() -> None:
    # input_audio_buffer.append of one sample at a time, up to the 300 s cap: each piece was
    # kept as its own numpy array (~120 bytes for 2 bytes of audio): ~880 MB per connection.
    import tracemalloc

    import numpy as np

    from bargein.transports.realtime.input_audio import InputAudio

    audio = InputAudio()
    samples = 50_000
    tracemalloc.start()
    try:
        for i in range(samples):
            audio.hold(audio.decode("audio/pcm", int(i % 3000).to_bytes(2, "little")))
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert held < 4 * samples  # 2 bytes a sample, and room for the buffer's growth
    audio.check_committable()  # counted: 50000 samples > 100 ms
    pcm = audio.take()
    assert pcm.dtype == np.int16 and np.array_equal(pcm, np.arange(samples) % 3000)


async def test_one_address_holds_at_most_its_share_of_realtime_connections() -> None:
    # Without a per-address bound one client took every --max-sessions slot and kept them
    # (an idle connection that answers pings is never closed).
    from trio_websocket import ConnectionClosed

    server = DemoServer()
    server.sessions.limit_loopback = True  # loopback is exempt otherwise; /ws's switch
    limit = server.sessions.max_sessions_per_client
    assert limit == 8
    url_of = "ws://127.0.0.1:{}/v1/realtime".format
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, trio.open_nursery() as nursery:
            release = trio.Event()
            held = 0

            async def hold() -> None:
                nonlocal held
                async with open_websocket_url(url_of(port)) as ws:
                    await next_event(ws, "session.created")
                    held += 1
                    await release.wait()

            for _ in range(limit):
                nursery.start_soon(hold)
            while True:
                if held == limit:
                    break
                await trio.sleep(0.05)
            async with open_websocket_url(url_of(port)) as ws:
                refused = json.loads(await ws.get_message())
                with pytest.raises(ConnectionClosed) as closed:
                    await ws.get_message()
            release.set()
    assert refused["error"]["code"] == "too_many_sessions", refused
    assert closed.value.reason.code == 1008
    assert server.realtime.stats.refused == {"too_many_sessions": 1}
    assert server.realtime.active == 0
