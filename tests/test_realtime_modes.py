"""Realtime endpoint options over the official SDK client: G.711, create_response false,
interrupt_response false, max_output_tokens, engine options, config changes mid-response."""

from __future__ import annotations

import base64
import time
from typing import Any

import numpy as np
import pytest
import trio

from bargein.dsp import float32_to_pcm16, pcm16_to_float32, resample, ulaw_encode
from bargein.testing.audio import load, silence
from bargein.testing.realtime import (
    TOKEN,
    RealtimeClient,
    ScriptedEngines,
    drive,
    manual,
    say,
    serve,
    speech,
)

MEDIUM = "One two three four five six seven eight nine ten."


def vad(c: RealtimeClient, **turn_detection: Any) -> None:
    c.wait_type("session.created")
    c.conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": {
        "type": "server_vad", **turn_detection}}}})
    c.wait_type("session.updated")


async def test_pcmu_in_and_out() -> None:
    engines = ScriptedEngines(["go forward ten meters"], ["Going."])
    narrow = float32_to_pcm16(resample(pcm16_to_float32(np.concatenate(
        [load("pocketsphinx_goforward.raw"), silence(1000)])), 16000, 8000))
    ulaw = ulaw_encode(narrow).tobytes()

    def scenario(c: RealtimeClient) -> None:
        c.wait_type("session.created")
        c.conn.session.update(session={"type": "realtime", "audio": {
            "input": {"format": {"type": "audio/pcmu"}},
            "output": {"format": {"type": "audio/pcmu"}}}})
        c.wait_type("session.updated")
        start = time.perf_counter()
        for n, at in enumerate(range(0, len(ulaw), 160)):  # 20 ms of 8 kHz G.711
            c.conn.input_audio_buffer.append(audio=base64.b64encode(ulaw[at:at + 160]).decode())
            time.sleep(max(0.0, start + (n + 1) * 0.01 - time.perf_counter()))
        _, done_t = c.wait_type("conversation.item.input_audio_transcription.completed")
        assert done_t["transcript"] == "go forward ten meters"
        _i, done = c.wait_type("response.done")
        assert done["response"]["audio"]["output"]["format"] == {"type": "audio/pcmu"}
        sizes = [len(base64.b64decode(e["delta"])) for e in c.events
                 if e["type"] == "response.output_audio.delta"]
        assert sizes and max(sizes) == 160  # 20 ms at 8 kHz, one byte a sample

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_create_response_false_waits_for_response_create() -> None:
    engines = ScriptedEngines(["go forward ten meters"], ["Only when asked."])

    def scenario(c: RealtimeClient) -> None:
        vad(c, create_response=False)
        c.stream(speech(), speed=2.0)
        i, _ = c.wait_type("conversation.item.input_audio_transcription.completed")
        assert "response.created" not in c.types()
        c.conn.response.create()
        _, done = c.wait_type("response.done", i)
        assert done["response"]["output"][0]["content"][0]["transcript"] == "Only when asked."
        assert len(engines.planner.requests) == 1  # the VAD turn never reached the model
        assert engines.planner.requests[0].messages[-1].content == "go forward ten meters"

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_interrupt_response_false_lets_the_response_finish() -> None:
    engines = ScriptedEngines(["go forward ten meters"], [MEDIUM])

    def scenario(c: RealtimeClient) -> None:
        vad(c, interrupt_response=False)
        c.stream(speech(), speed=2.0)
        i, _created = c.wait_type("response.created")
        c.wait_type("response.output_audio.delta", i)
        c.stream(speech(), speed=2.0)  # talking over it
        _j, done = c.wait_type("response.done", i)
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["transcript"] == MEDIUM
        assert "input_audio_buffer.speech_started" not in c.types(i)

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_max_output_tokens_and_response_instructions() -> None:
    engines = ScriptedEngines([], [MEDIUM])

    def scenario(c: RealtimeClient) -> None:
        manual(c, instructions="Session rules.")
        say(c, "count")
        c.conn.response.create(response={"max_output_tokens": 3, "instructions": "Count."})
        _, done = c.wait_type("response.done")
        assert done["response"]["output"][0]["content"][0]["transcript"] == "One two three"
        assert engines.planner.requests[-1].messages[0].content == "Count."

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_unknown_voice_and_config_change_during_a_response_are_errors() -> None:
    engines = ScriptedEngines([], [MEDIUM])

    def factory(options: Any) -> Any:
        if "voice" in options:
            raise ValueError(f"unknown voice {options['voice']!r}")
        return ScriptedEngines.factory(engines, options)

    engines.factory = factory  # type: ignore[method-assign]

    def scenario(c: RealtimeClient) -> None:
        manual(c, audio={"input": {"turn_detection": None}, "output": {"voice": "nobody"}})
        say(c, "hi")
        c.send({"type": "response.create", "event_id": "r1"})
        _, err = c.wait_type("error")
        assert err["error"]["event_id"] == "r1"
        assert err["error"]["param"] == "session.audio.output.voice"
        c.conn.session.update(session={"type": "realtime", "audio": {"output": {
            "voice": "alloy"}}})
        c.wait(lambda e: e["type"] == "session.updated"
               and e["session"]["audio"]["output"]["voice"] == "alloy")
        c.conn.response.create()
        i, _ = c.wait_type("response.output_audio.delta")
        c.send({"type": "session.update", "event_id": "u1", "session": {
            "type": "realtime", "audio": {"output": {"speed": 1.2}}}})
        _, busy = c.wait(lambda e: e["type"] == "error" and e["error"]["event_id"] == "u1")
        assert busy["error"]["code"] == "unsupported"
        _, done = c.wait_type("response.done", i)
        assert done["response"]["status"] == "completed"

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_text_modality_sends_text_events_and_no_audio() -> None:
    engines = ScriptedEngines([], ["Just text."])

    def scenario(c: RealtimeClient) -> None:
        manual(c, output_modalities=["text"])
        say(c, "hi")
        c.conn.response.create()
        _, done = c.wait_type("response.done")
        _, text = c.wait_type("response.output_text.done")
        assert text["text"] == "Just text."
        assert "response.output_audio.delta" not in c.types()
        assert done["response"]["output"][0]["content"][0] == {"type": "output_text",
                                                               "text": "Just text."}

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_the_async_sdk_client_connects_unchanged() -> None:
    """`AsyncOpenAI(base_url=..., api_key=TOKEN).realtime.connect(model=...)` (asyncio, in a
    thread of its own)."""
    import asyncio

    from openai import AsyncOpenAI

    engines = ScriptedEngines([], ["Async hello."])

    async def client(port: int) -> list[str]:
        api = AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=TOKEN, max_retries=0)
        seen: list[str] = []
        async with api.realtime.connect(model="m") as conn:
            await conn.session.update(session={"type": "realtime", "audio": {"input": {
                "turn_detection": None}}})
            await conn.conversation.item.create(item={"type": "message", "role": "user",
                                                      "content": [{"type": "input_text",
                                                                   "text": "hi"}]})
            await conn.response.create()
            async for event in conn:
                seen.append(event.type)
                if event.type == "response.output_audio_transcript.done":
                    seen.append(event.transcript)
                if event.type == "response.done":
                    break
        return seen

    async with serve(engines) as port:
        seen = await trio.to_thread.run_sync(lambda: asyncio.run(client(port)))
    assert seen[:2] == ["session.created", "conversation.created"]
    assert "session.updated" in seen and "response.output_audio.delta" in seen
    assert "Async hello." in seen and seen[-1] == "response.done"


async def test_shutdown_tells_the_client_and_closes() -> None:
    from bargein.testing.web import running
    from bargein.transports.access import AccessConfig
    from bargein.transports.app import DemoServer

    engines = ScriptedEngines([], ["x"])
    server = DemoServer(engines.factory, access=AccessConfig(token=TOKEN))

    def scenario(c: RealtimeClient) -> None:
        c.wait_type("session.created")
        trio.from_thread.run_sync(server.sessions.shutdown)
        _, err = c.wait_type("error")
        assert err["error"]["code"] == "shutting_down"
        with pytest.raises(ConnectionError):
            c.wait(lambda e: False)

    async with running(server) as port:
        await drive(port, scenario)
    assert server.realtime.stats.connections == 1


async def test_partial_transcripts_are_transcription_deltas() -> None:
    engines = ScriptedEngines(["go forward ten meters"], ["Okay."])
    engines.stt.ms_per_word = 300  # one more word of the partial every 300 ms of speech

    def scenario(c: RealtimeClient) -> None:
        c.wait_type("session.created")
        c.stream(speech(), speed=2.0)
        _, done = c.wait_type("conversation.item.input_audio_transcription.completed")
        deltas = [e for e in c.events
                  if e["type"] == "conversation.item.input_audio_transcription.delta"]
        assert len(deltas) >= 2 and all(e["item_id"] == done["item_id"] for e in deltas)
        assert done["transcript"].startswith("".join(e["delta"] for e in deltas))

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_light_embedded_engines_behind_the_endpoint() -> None:
    """The real offline engines (pocketsphinx, the local planner, espeak-ng) answer a Realtime
    client the same way."""
    from bargein.testing.realtime import realtime_client
    from bargein.testing.web import running
    from bargein.transports.access import AccessConfig
    from bargein.transports.app import DemoServer

    server = DemoServer(access=AccessConfig(token=TOKEN))  # the light family by default

    def scenario() -> None:
        with realtime_client(port, TOKEN) as c:
            c.wait_type("session.created")
            c.stream(speech(), speed=2.0)
            _, heard = c.wait_type("conversation.item.input_audio_transcription.completed")
            assert "forward" in heard["transcript"]
            _, done = c.wait_type("response.done")
            assert done["response"]["status"] == "completed"
            assert "response.output_audio.delta" in c.types()
            assert done["response"]["output"][0]["content"][0]["transcript"]
            assert c.invalid == []

    async with running(server) as port:
        await trio.to_thread.run_sync(scenario)


async def test_idle_timeout_prompts_the_user() -> None:
    engines = ScriptedEngines(["go forward ten meters"], ["Going.", "Are you still there?"])

    def scenario(c: RealtimeClient) -> None:
        vad(c, idle_timeout_ms=5000)
        c.stream(speech(), speed=2.0)
        i, first = c.wait_type("response.done")
        j, triggered = c.wait_type("input_audio_buffer.timeout_triggered", i)
        assert triggered["audio_end_ms"] - triggered["audio_start_ms"] == 5000
        _, done = c.wait(lambda e: e["type"] == "response.done"
                         and e["response"]["id"] != first["response"]["id"], j)
        assert done["response"]["output"][0]["content"][0]["transcript"] == \
            "Are you still there?"
        # The empty item gives the model no user message: it continues from its own reply.
        assert engines.planner.requests[-1].messages[-1].content == "Going."

    async with serve(engines) as port:
        await drive(port, scenario)
