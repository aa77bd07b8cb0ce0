"""Odd frames for `/v1/realtime` and the telephony routes (`/twilio`, `/telnyx`): the
connections `bench/fuzz_ws.py --endpoint realtime|twilio|telnyx|all` runs.

Realtime: every client event type with wrong JSON types in each field (lists and objects where
strings go, numbers beyond a float, huge strings), base64 that is not base64 or decodes to an
odd length, session.update mid-response, commit/clear/cancel at any time, binary and empty
frames, junk JSON. Its `error` events are counted by code; `server_error` means an event
reached a path the parser should have refused (our bug). Telephony: a `start` (valid, or with
odd parameters and codecs), then media (valid, odd base64, oversize), marks, DTMF, unknown
events, binary and empty frames, junk JSON; the server sends no errors to a carrier, so its
close codes are what is counted.
"""

from __future__ import annotations

import base64
import json
import random
from typing import Any

import trio
from trio_websocket import ConnectionClosed, wrap_client_stream
from wsproto.utilities import LocalProtocolError

ODD: list[Any] = [
    None, True, 0, -1, 1.5, 2**64, 10**400, -(10**400), 1e308, "", "x" * 70_000, [], {}, [1],
    {"a": {"b": [None]}}, "NaN", "\ud7ff", 24000, "audio/pcm", "realtime", "user",
]  # fmt: skip
JUNK = ["", "{", "[]", "null", "NaN", "1e999", "[" * 5000, '{"type":"x","type":"y"}',
        '{"type": NaN}', '{"event": "media", "event": "stop"}']  # fmt: skip


def odd(rng: random.Random) -> Any:
    return rng.choice(ODD)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _session(rng: random.Random) -> dict[str, Any]:
    fmt = rng.choice([{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"},
                      {"type": "audio/pcma"}, {"type": odd(rng)}, {"rate": odd(rng)}, odd(rng)])
    td = rng.choice([None, {"type": "server_vad"}, {"type": "semantic_vad", "eagerness": odd(rng)},
                     {"type": "server_vad", "threshold": odd(rng), "silence_duration_ms": odd(rng),
                      "prefix_padding_ms": odd(rng), "idle_timeout_ms": odd(rng),
                      "create_response": odd(rng), "interrupt_response": odd(rng)}, odd(rng)])
    keys = {
        "type": lambda: rng.choice(["realtime", "transcription", odd(rng)]),
        "instructions": lambda: rng.choice(["be brief", odd(rng)]),
        "output_modalities": lambda: rng.choice([["audio"], ["text"], odd(rng)]),
        "tools": lambda: rng.choice([[{"type": "function", "name": "f", "parameters": {}}],
                                     [{"type": "function", "name": odd(rng)}], odd(rng)]),
        "tool_choice": lambda: rng.choice(["auto", {"type": "function", "name": odd(rng)},
                                           odd(rng)]),
        "max_output_tokens": lambda: rng.choice([5, "inf", odd(rng)]),
        "audio": lambda: rng.choice([
            {"input": {"format": fmt, "turn_detection": td, "transcription": odd(rng)},
             "output": {"format": fmt, "voice": rng.choice(["alloy", "en", "xx", odd(rng)]),
                        "speed": odd(rng)}},
            {"input": odd(rng)}, {"output": odd(rng)}, odd(rng)]),
        "include": lambda: odd(rng), "tracing": lambda: odd(rng), "prompt": lambda: odd(rng),
        "zzz": lambda: odd(rng),
    }  # fmt: skip
    return {k: keys[k]() for k in rng.sample(list(keys), rng.randint(0, 4))}


def _item(rng: random.Random) -> Any:
    text = {"type": "input_text", "text": rng.choice(["what is two plus two", odd(rng)])}
    return rng.choice([
        {"type": "message", "role": "user", "content": [text]},
        {"type": "message", "role": odd(rng), "content": [text]},
        {"type": "message", "role": "user", "content": [{"type": odd(rng), "text": "hi"}]},
        {"type": "message", "role": "user", "content": odd(rng)},
        {"type": "function_call_output", "call_id": odd(rng), "output": odd(rng)},
        {"type": "function_call", "call_id": "c", "name": "f", "arguments": odd(rng)},
        {"type": "message", "role": "user", "id": odd(rng),
         "content": [{"type": "input_audio", "transcript": odd(rng)}]},
        odd(rng),
    ])  # fmt: skip


def realtime_frame(rng: random.Random) -> str | bytes:
    """One frame a hostile Realtime client sends; about a third are well-formed audio."""
    pick = rng.random()
    if pick < 0.04:
        return rng.randbytes(rng.choice([0, 0, 1, 100]))
    if pick < 0.08:
        return rng.choice(JUNK)
    kind = rng.choice(["session.update", "input_audio_buffer.append", "input_audio_buffer.append",
                       "input_audio_buffer.append", "input_audio_buffer.commit",
                       "input_audio_buffer.clear", "conversation.item.create",
                       "conversation.item.retrieve", "conversation.item.truncate",
                       "conversation.item.delete", "response.create", "response.cancel",
                       "output_audio_buffer.clear", "nope", odd(rng)])  # fmt: skip
    event: dict[str, Any] = {"type": kind}
    if rng.random() < 0.2:
        event["event_id"] = rng.choice(["e1", "x" * 65, odd(rng)])
    if kind == "session.update":
        event["session"] = _session(rng) if rng.random() < 0.9 else odd(rng)
    elif kind == "input_audio_buffer.append":
        event["audio"] = rng.choice([b64(bytes(960)), b64(bytes(960)), b64(rng.randbytes(960)),
                                     b64(rng.randbytes(961)), b64(b"\x01"), "", "!!!", "YQ",
                                     "YQ===", b64(bytes(480_000)), odd(rng)])  # fmt: skip
    elif kind == "conversation.item.create":
        event["item"] = _item(rng)
        if rng.random() < 0.3:
            event["previous_item_id"] = rng.choice(["root", "nosuch", odd(rng)])
    elif kind in ("conversation.item.retrieve", "conversation.item.delete",
                  "conversation.item.truncate"):
        event["item_id"] = rng.choice(["item_1", "nosuch", odd(rng)])
        if kind.endswith("truncate"):
            event["content_index"] = rng.choice([0, odd(rng)])
            event["audio_end_ms"] = rng.choice([0, 100, 10**12, -5, odd(rng)])
    elif kind == "response.create" and rng.random() < 0.5:
        event["response"] = rng.choice([{}, odd(rng), {
            key: odd(rng) for key in rng.sample(["instructions", "max_output_tokens", "metadata",
                                                 "output_modalities", "tool_choice", "tools",
                                                 "conversation", "input"], 2)}])  # fmt: skip
    elif kind == "response.cancel" and rng.random() < 0.5:
        event["response_id"] = odd(rng)
    if rng.random() < 0.03:
        event[rng.choice(["zz", "type"])] = odd(rng)
    return json.dumps(event)


# -- telephony -------------------------------------------------------------------------------

TWILIO_START: dict[str, Any] = {
    "event": "start", "sequenceNumber": "1", "streamSid": "MZ1",
    "start": {"streamSid": "MZ1", "callSid": "CA1", "tracks": ["inbound"], "customParameters": {},
              "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}},
}  # fmt: skip
TELNYX_START: dict[str, Any] = {
    "event": "start", "sequence_number": "1", "stream_id": "s1",
    "start": {"call_control_id": "c1", "custom_parameters": [],
              "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1}},
}  # fmt: skip


def carrier_start(rng: random.Random, carrier: str) -> str:
    obj = json.loads(json.dumps(TWILIO_START if carrier == "twilio" else TELNYX_START))
    body = obj["start"]
    params_key = "customParameters" if carrier == "twilio" else "custom_parameters"
    if rng.random() < 0.5:  # odd options, codecs, ids: refused calls (1008) or calls
        params = {k: rng.choice(["en", "onset", "170", "x" * 600, "", "nosuch"])
                  for k in rng.sample(["voice", "policy", "rate_wpm", "pitch", "token", "z"], 2)}
        body[params_key] = rng.choice([params, odd(rng), [params]])
        fmt = body["mediaFormat" if carrier == "twilio" else "media_format"]
        if rng.random() < 0.3:
            fmt["encoding"] = rng.choice(["PCMA", "audio/x-alaw", "L16", odd(rng)])
        if rng.random() < 0.2:
            fmt["sampleRate" if carrier == "twilio" else "sample_rate"] = odd(rng)
        if rng.random() < 0.2:
            obj["streamSid" if carrier == "twilio" else "stream_id"] = odd(rng)
    return json.dumps(obj)


def carrier_frame(rng: random.Random, carrier: str, seq: int) -> str | bytes:
    """One frame a hostile carrier sends after `start`; most are well-formed 20 ms media."""
    seq_key = "sequenceNumber" if carrier == "twilio" else "sequence_number"
    pick = rng.random()
    if pick < 0.04:
        return rng.randbytes(rng.choice([0, 0, 3, 160]))
    if pick < 0.08:
        return rng.choice(JUNK)
    if pick < 0.6:
        media: dict[str, Any] = {"payload": b64(bytes([0xFF]) * 160), "track": "inbound",
                                 "chunk": str(seq), "timestamp": str(20 * seq)}
        if rng.random() < 0.3:
            key = rng.choice(["payload", "track", "chunk", "timestamp"])
            media[key] = rng.choice(["!!!", "", b64(bytes(9000)), "outbound", "-1", odd(rng)])
        return json.dumps({"event": "media", seq_key: str(seq), "media": media})
    event = rng.choice(["mark", "dtmf", "connected", "start", "stop", "teleport", odd(rng)])
    obj: dict[str, Any] = {"event": event, seq_key: rng.choice([str(seq), str(seq), odd(rng)])}
    if event == "mark":
        obj["mark"] = {"name": rng.choice(["b1.t1.s160", "nosuch", odd(rng)])}
    elif event == "dtmf":
        obj["dtmf"] = rng.choice([{"digit": rng.choice("0123456789*#")}, {"digit": odd(rng)}])
    return json.dumps(obj)


# -- connections -----------------------------------------------------------------------------


async def _ws(port: int, path: str, nursery: trio.Nursery) -> tuple[trio.SocketStream, Any]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = await wrap_client_stream(nursery, stream, f"127.0.0.1:{port}", path,
                                  message_queue_size=64, max_message_size=2**21)
    return stream, ws


async def endpoint_connection(port: int, endpoint: str, rng: random.Random, stats: Any,
                              budget: int) -> None:
    """One hostile connection to `/v1/realtime` (endpoint `realtime`) or `/<carrier>`; counts
    into `stats` (fuzz_ws.Stats) under keys prefixed with the endpoint. A failure of the client
    library itself (trio-websocket answering a ping while it closes) is counted, not raised."""
    try:
        await _connection(port, endpoint, rng, stats, budget)
    except* (LocalProtocolError, ConnectionClosed, trio.BrokenResourceError):
        stats.endings[f"{endpoint}:client_error"] += 1


async def _connection(port: int, endpoint: str, rng: random.Random, stats: Any,
                      budget: int) -> None:
    path = "/v1/realtime" if endpoint == "realtime" else f"/{endpoint}"
    async with trio.open_nursery() as nursery:
        stream, ws = await _ws(port, path, nursery)
        stats.connections += 1

        async def read() -> None:
            try:
                while True:
                    frame = await ws.get_message()
                    stats.received += 1
                    if endpoint == "realtime" and '"type":"error"' in frame:
                        stats.errors[f"realtime:{json.loads(frame)['error']['code']}"] += 1
            except ConnectionClosed:
                pass

        nursery.start_soon(read)
        count = min(budget, rng.randint(20, 1500))
        if endpoint == "realtime":
            frames = [realtime_frame(rng) for _ in range(count)]
        else:
            frames = [carrier_start(rng, endpoint)]
            frames += [carrier_frame(rng, endpoint, seq) for seq in range(2, count + 2)]
        try:
            for frame in frames:
                await ws.send_message(frame)
                stats.frames += 1
                if rng.random() < 0.01:
                    await trio.sleep(0.2)  # let a response or reply get going
        except ConnectionClosed:
            stats.endings[f"{endpoint}:closed_by_server"] += 1
            stats.close_codes[f"{endpoint}:{ws.closed.code if ws.closed else None}"] += 1
            nursery.cancel_scope.cancel()
            return
        ending = rng.choice(["normal", "abrupt", "wait"])
        stats.endings[f"{endpoint}:{ending}"] += 1
        if ending == "abrupt":
            await stream.aclose()
        else:
            if ending == "wait":  # the reader sees what comes; a close by the server too
                await trio.sleep(2)
            with trio.move_on_after(5):
                await ws.aclose()
            if ws.closed is not None:
                stats.close_codes[f"{endpoint}:{ws.closed.code}"] += 1
        nursery.cancel_scope.cancel()
