"""The OpenAI-Realtime-compatible endpoint, driven by the official `openai` SDK's Realtime client
over a real socket against the real hypercorn server (docs/realtime.md). Engines are scripted
(deterministic words and timing); the VAD is the real webrtcvad on a shared recording."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import trio

from bargein.engines.base import Engines, PlanRequest
from bargein.testing.audio import load, silence
from bargein.testing.realtime import RealtimeClient, realtime_client, to_24k
from bargein.testing.scripted import ScriptedPlanner, ScriptedStt, ScriptedTts
from bargein.testing.web import running
from bargein.transports.access import AccessConfig
from bargein.transports.app import DemoServer

TOKEN = "tok-realtime"
LONG_REPLY = (
    "Sure. Let me tell you a rather long story about the sea and the ships that sail on it "
    "every single day of the year, from the harbour out to the open water and back again."
)


def speech() -> np.ndarray:
    """'go forward ten meters' (2.8 s) then 1 s of silence, at 24 kHz."""
    return to_24k(np.concatenate([load("pocketsphinx_goforward.raw"), silence(1000)]))


class Engines3:
    def __init__(self, transcripts: list[str], replies: Any) -> None:
        self.stt = ScriptedStt(transcripts, default="okay")
        self.planner = ScriptedPlanner(replies, tokens_per_second=50)
        self.tts = ScriptedTts(24000, ms_per_char=50)

    def factory(self, options: Any) -> Engines:
        return Engines(self.stt, self.planner, self.tts)


@asynccontextmanager
async def serve(engines: Engines3, token: str | None = TOKEN) -> AsyncIterator[int]:
    server = DemoServer(engines.factory, access=AccessConfig(token=token))
    async with running(server) as port:
        yield port


async def drive(port: int, scenario: Callable[[RealtimeClient], None], **kw: Any) -> None:
    def run() -> None:
        with realtime_client(port, TOKEN, **kw) as client:
            try:
                scenario(client)
            finally:
                assert client.invalid == [], client.invalid[:3]

    await trio.to_thread.run_sync(run)


def user_texts(request: PlanRequest) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in request.messages]


async def test_session_update_round_trip() -> None:
    engines = Engines3([], ["Okay."])

    def scenario(c: RealtimeClient) -> None:
        _, created = c.wait_type("session.created")
        assert created["session"]["id"].startswith("sess_")
        assert created["session"]["model"] == "my-model"
        c.wait_type("conversation.created")
        c.conn.session.update(session={
            "type": "realtime",
            "instructions": "Be brief.",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"},
                          "turn_detection": {"type": "server_vad", "silence_duration_ms": 700,
                                             "threshold": 0.6}},
                "output": {"voice": "alloy", "speed": 1.0},
            },
            "tools": [{"type": "function", "name": "get_time", "description": "the time",
                       "parameters": {"type": "object", "properties": {}}}],
        })
        _, updated = c.wait_type("session.updated")
        s = updated["session"]
        assert s["instructions"] == "Be brief."
        assert s["audio"]["input"]["format"] == {"type": "audio/pcmu"}
        td = s["audio"]["input"]["turn_detection"]
        assert td["type"] == "server_vad" and td["silence_duration_ms"] == 700
        assert td["threshold"] == 0.6 and td["create_response"] is True  # defaults kept
        assert s["audio"]["output"]["format"] == {"type": "audio/pcm", "rate": 24000}
        assert [t["name"] for t in s["tools"]] == ["get_time"]
        # A bad field: an error naming the event and the parameter; the config is unchanged.
        c.send({"type": "session.update", "event_id": "evt_bad",
                "session": {"type": "realtime", "audio": {"input": {"format": {
                    "type": "audio/pcm", "rate": 16000}}}}})
        _, err = c.wait_type("error")
        assert err["error"]["event_id"] == "evt_bad"
        assert err["error"]["param"] == "session.audio.input.format.rate"
        c.conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        _, again = c.wait(lambda e: e["type"] == "session.updated"
                          and e["session"]["output_modalities"] == ["text"])
        assert again["session"]["instructions"] == "Be brief."  # partial update

    async with serve(engines) as port:
        await drive(port, scenario, model="my-model", unknown_param="ignored")


async def test_vad_turn_gives_transcript_and_audio_response() -> None:
    engines = Engines3(["go forward ten meters"], ["Going forward now."])

    def scenario(c: RealtimeClient) -> None:
        c.wait_type("session.created")
        c.stream(speech(), speed=2.0)
        _, started = c.wait_type("input_audio_buffer.speech_started")
        _, stopped = c.wait_type("input_audio_buffer.speech_stopped")
        assert stopped["item_id"] == started["item_id"]
        assert 0 < started["audio_start_ms"] < stopped["audio_end_ms"]
        _, done_t = c.wait_type("conversation.item.input_audio_transcription.completed")
        assert done_t["transcript"] == "go forward ten meters"
        assert done_t["item_id"] == started["item_id"]
        i, created = c.wait_type("response.created")
        rid = created["response"]["id"]
        _, done = c.wait_type("response.done")
        assert done["response"]["status"] == "completed"
        deltas = [e for e in c.events[i:] if e["type"] == "response.output_audio.delta"]
        assert deltas and all(e["response_id"] == rid for e in deltas)
        audio = b"".join(__import__("base64").b64decode(e["delta"]) for e in deltas)
        assert len(audio) > 24000  # more than half a second of 24 kHz PCM16
        _, transcript = c.wait_type("response.output_audio_transcript.done")
        assert transcript["transcript"] == "Going forward now."
        item = done["response"]["output"][0]
        assert item["role"] == "assistant" and item["content"][0]["transcript"] == \
            "Going forward now."
        # The model saw the user's words.
        assert ("user", "go forward ten meters") in user_texts(engines.planner.requests[-1])

    async with serve(engines) as port:
        await drive(port, scenario)
