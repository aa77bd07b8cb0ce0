"""The OpenAI-Realtime-compatible endpoint, driven by the official `openai` SDK's Realtime client
over a real socket against the real hypercorn server (docs/realtime.md). Engines are scripted
(deterministic words and timing); the VAD is the real webrtcvad on a shared recording."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import trio

from bargein.engines.base import PlanRequest
from bargein.testing.audio import load, silence
from bargein.testing.realtime import (
    RealtimeClient,
    ScriptedEngines,
    drive,
    manual,
    realtime_client,
    say,
    serve,
    speech,
    to_24k,
)

LONG_REPLY = (
    "Sure. Let me tell you a rather long story about the sea and the ships that sail on it "
    "every single day of the year, from the harbour out to the open water and back again."
)


def user_texts(request: PlanRequest) -> list[tuple[str, str]]:
    return [(m.role, m.content) for m in request.messages]


async def test_session_update_round_trip() -> None:
    engines = ScriptedEngines([], ["Okay."])

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
    engines = ScriptedEngines(["go forward ten meters"], ["Going forward now."])

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


def second_speech() -> np.ndarray:
    """'eight of spades four of clubs seven of hearts' (3.5 s) then 1.2 s of silence."""
    return to_24k(np.concatenate([load("pocketsphinx_cards_005.wav"), silence(1200)]))


async def test_barge_in_cancels_with_turn_detected_and_commits_only_the_heard_part() -> None:
    engines = ScriptedEngines(["go forward ten meters", "stop"], [LONG_REPLY, "Okay, stopping."])

    def scenario(c: RealtimeClient) -> None:
        c.wait_type("session.created")
        c.stream(speech(), speed=2.0)
        _, created = c.wait_type("response.created")
        rid = created["response"]["id"]
        c.wait_type("response.output_audio.delta", response_id=rid)
        c.stream(second_speech(), speed=2.0)  # talking over the reply
        i_done, done = c.wait_type("response.done")
        assert done["response"]["id"] == rid
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "turn_detected"
        i_speech, _ = c.wait_type("input_audio_buffer.speech_started", after=0)
        later = [e for e in c.events[i_done:] if e["type"] == "input_audio_buffer.speech_started"]
        assert later or i_speech < i_done
        # Not one audio delta of that response after its response.done.
        _, nxt = c.wait(lambda e: e["type"] == "response.done" and e["response"]["id"] != rid,
                        after=i_done + 1)
        assert not [e for e in c.events[i_done:] if e["type"] == "response.output_audio.delta"
                    and e["response_id"] == rid]
        item = done["response"]["output"][0]
        heard = item["content"][0]["transcript"]
        assert item["status"] == "incomplete"
        assert heard and heard != LONG_REPLY and LONG_REPLY.startswith(heard)
        assert nxt["response"]["status"] == "completed"
        # The next model request holds only the heard part.
        request = engines.planner.requests[-1]
        assistant = [m for m in request.messages if m.role == "assistant"]
        assert [m.content for m in assistant] == [heard] and assistant[0].interrupted
        assert request.messages[-1].content == "stop"

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_manual_turns_commit_and_response_create() -> None:
    engines = ScriptedEngines(["go forward ten meters"], ["Manual answer."])

    def scenario(c: RealtimeClient) -> None:
        c.wait_type("session.created")
        c.conn.session.update(session={"type": "realtime",
                                       "audio": {"input": {"turn_detection": None}}})
        _, updated = c.wait_type("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"] is None
        c.send({"type": "input_audio_buffer.commit", "event_id": "empty"})
        _, err = c.wait_type("error")
        assert err["error"]["event_id"] == "empty"
        assert err["error"]["code"] == "input_audio_buffer_commit_empty"
        c.stream(speech(), speed=50.0)  # no VAD: nothing happens until the commit
        c.conn.input_audio_buffer.commit()
        _, committed = c.wait_type("input_audio_buffer.committed")
        c.conn.response.create()
        _, transcribed = c.wait_type("conversation.item.input_audio_transcription.completed")
        assert transcribed["item_id"] == committed["item_id"]
        assert transcribed["transcript"] == "go forward ten meters"
        _, done = c.wait_type("response.done")
        assert done["response"]["status"] == "completed"
        assert done["response"]["output"][0]["content"][0]["transcript"] == "Manual answer."
        assert "input_audio_buffer.speech_started" not in c.types()
        assert ("user", "go forward ten meters") in user_texts(engines.planner.requests[-1])

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_response_cancel() -> None:
    engines = ScriptedEngines([], [LONG_REPLY, "Short."])

    def scenario(c: RealtimeClient) -> None:
        manual(c)
        c.send({"type": "response.cancel", "event_id": "nothing"})
        _, err = c.wait_type("error")
        assert err["error"]["event_id"] == "nothing"
        say(c, "tell me a story")
        c.conn.response.create()
        _, created = c.wait_type("response.created")
        rid = created["response"]["id"]
        c.wait_type("response.output_audio.delta", response_id=rid)
        c.send({"type": "response.create", "event_id": "twice"})
        _, busy = c.wait(lambda e: e["type"] == "error" and e["error"]["event_id"] == "twice")
        assert busy["error"]["code"] == "conversation_already_has_active_response"
        c.conn.response.cancel()
        i, done = c.wait_type("response.done")
        assert done["response"]["status"] == "cancelled"
        assert done["response"]["status_details"]["reason"] == "client_cancelled"
        say(c, "and now?")
        c.conn.response.create()
        c.wait(lambda e: e["type"] == "response.done" and e["response"]["id"] != rid, after=i + 1)
        assert not [e for e in c.events[i:] if e["type"] == "response.output_audio.delta"
                    and e["response_id"] == rid]

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_truncate_beyond_the_audio_is_an_error_within_it_is_heard() -> None:
    engines = ScriptedEngines([], ["One two three four five six.", "Fine."])

    def scenario(c: RealtimeClient) -> None:
        manual(c)
        say(c, "count")
        c.conn.response.create()
        _, done = c.wait_type("response.done")
        item = done["response"]["output"][0]
        deltas = [e for e in c.events if e["type"] == "response.output_audio.delta"]
        audio_ms = sum(len(__import__("base64").b64decode(e["delta"])) for e in deltas) / 48
        c.send({"type": "conversation.item.truncate", "event_id": "far", "item_id": item["id"],
                "content_index": 0, "audio_end_ms": int(audio_ms) + 500})
        _, err = c.wait_type("error")
        assert err["error"]["event_id"] == "far"
        assert err["error"]["code"] == "audio_end_ms_beyond_audio"
        assert err["error"]["param"] == "audio_end_ms"
        c.conn.conversation.item.truncate(item_id=item["id"], content_index=0, audio_end_ms=900)
        _, truncated = c.wait_type("conversation.item.truncated")
        assert truncated["audio_end_ms"] == 900
        c.conn.conversation.item.retrieve(item_id=item["id"])
        _, got = c.wait_type("conversation.item.retrieved")
        heard = got["item"]["content"][0]["transcript"]
        assert heard and "One two three four five six.".startswith(heard) and heard != \
            "One two three four five six."
        say(c, "go on")
        c.conn.response.create()
        c.wait(lambda e: e["type"] == "response.done" and e["response"]["id"] !=
               done["response"]["id"])
        assistant = [m.content for m in engines.planner.requests[-1].messages
                     if m.role == "assistant"]
        assert assistant == [heard]

    async with serve(engines) as port:
        await drive(port, scenario)


class WeatherPlanner:
    """Calls the client's `get_weather` once, then answers with what it returned."""

    name = "weather"

    def __init__(self) -> None:
        self.requests: list[PlanRequest] = []

    async def respond(self, request: PlanRequest, out: Any) -> None:
        from bargein.engines.base import TextDelta

        self.requests.append(request)
        await out.send(TextDelta("I have no tools."))

    async def respond_with_tools(self, request: PlanRequest, tools: Any, choice: str,
                                 out: Any) -> None:
        from bargein.engines.base import TextDelta
        from bargein.transports.realtime import FunctionCall

        self.requests.append(request)
        last = request.messages[-1]
        if "returned" in last.content:
            await out.send(TextDelta(f"It is {last.content.split('temp')[1][3:5]} degrees."))
        else:
            assert [t.name for t in tools] == ["get_weather"]
            await out.send(FunctionCall("get_weather", '{"city": "Paris"}'))


async def test_function_call_round_trip() -> None:
    engines = ScriptedEngines([], [])
    planner = WeatherPlanner()
    engines.planner = planner  # type: ignore[assignment]

    def scenario(c: RealtimeClient) -> None:
        manual(c, tools=[{"type": "function", "name": "get_weather",
                          "parameters": {"type": "object",
                                         "properties": {"city": {"type": "string"}}}}])
        say(c, "weather in Paris?")
        c.conn.response.create()
        _, args = c.wait_type("response.function_call_arguments.done")
        assert args["name"] == "get_weather" and args["arguments"] == '{"city": "Paris"}'
        i, done = c.wait_type("response.done")
        assert done["response"]["status"] == "completed"
        call = done["response"]["output"][0]
        assert call["type"] == "function_call" and call["call_id"] == args["call_id"]
        c.conn.conversation.item.create(item={"type": "function_call_output",
                                              "call_id": call["call_id"],
                                              "output": '{"temp": 21}'})
        c.wait_type("conversation.item.added", after=i)
        c.conn.response.create()
        _, final = c.wait(lambda e: e["type"] == "response.done"
                          and e["response"]["id"] != done["response"]["id"], after=i + 1)
        assert final["response"]["output"][0]["content"][0]["transcript"] == "It is 21 degrees."
        roles = [(m.role, m.content[:10]) for m in planner.requests[-1].messages]
        assert roles[-2][0] == "assistant" and roles[-1] == ("system", "[function ")

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_malformed_events_give_errors_and_the_session_continues() -> None:
    engines = ScriptedEngines([], ["Still here."])

    def scenario(c: RealtimeClient) -> None:
        manual(c)
        bad = [
            ("not json", "invalid_json", None),
            ('["a list"]', "invalid_event", None),
            ('{"type": "nope", "event_id": "e1"}', "unknown_event", "e1"),
            ('{"type": "input_audio_buffer.append", "event_id": "e2", "audio": "!!"}',
             "invalid_value", "e2"),
            ('{"type": "input_audio_buffer.append", "event_id": "e3", "audio": "AA=="}',
             "invalid_value", "e3"),  # one byte: half a PCM16 sample
            ('{"type": "output_audio_buffer.clear", "event_id": "e4"}', "unsupported", "e4"),
            ('{"type": "conversation.item.retrieve", "event_id": "e5", "item_id": "x"}',
             "item_not_found", "e5"),
            ('{"type": "conversation.item.delete", "event_id": "e6"}',
             "missing_required_parameter", "e6"),
            ('{"type": "session.update", "event_id": "e7", "session": {"bogus": 1}}',
             "unknown_parameter", "e7"),
            ('{"type": "response.create", "event_id": "e8", "response": {"conversation": "none"}}',
             "unsupported", "e8"),
            ('{"type": "conversation.item.create", "event_id": "e9", "item": {"type": "message",'
             ' "role": "user", "content": [{"type": "input_image", "image_url": "x"}]}}',
             "unsupported", "e9"),
        ]
        start = len(c.events)
        for frame, _, _ in bad:
            c.send_raw(frame)
        for n, (_, code, event_id) in enumerate(bad):
            _, err = c.wait(lambda e: e["type"] == "error", after=start)
            start = c.events.index(err) + 1
            assert (err["error"]["code"], err["error"]["event_id"]) == (code, event_id), n
        say(c, "are you there?")
        c.conn.response.create()
        _, done = c.wait_type("response.done")
        assert done["response"]["output"][0]["content"][0]["transcript"] == "Still here."

    async with serve(engines) as port:
        await drive(port, scenario)


async def test_wrong_token_is_refused() -> None:
    engines = ScriptedEngines([], ["x"])

    def scenario() -> None:
        with realtime_client(port, "wrong") as c:
            _, err = c.wait_type("error")
            assert err["error"]["code"] == "unauthorized"
            assert "wrong" not in err["error"]["message"]
            with pytest.raises(ConnectionError):
                c.wait(lambda e: e["type"] == "session.created")  # closed, no session

    async with serve(engines) as port:
        await trio.to_thread.run_sync(scenario)
