"""The pure parts of the Realtime endpoint: client events, session config, conversation state."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import OutFrame, WordMark
from bargein.transports.realtime import client_events as ce
from bargein.transports.realtime.config import RealtimeSettings, apply_update
from bargein.transports.realtime.conversation import RealtimeConversation
from bargein.transports.realtime.errors import RealtimeInvalid


def ev(kind: EventType, turn: int | None = None, **data: object) -> Event:
    return Event(kind, 0.0, "s", 0, turn, data)


def test_errors_carry_the_event_id_and_the_parameter() -> None:
    with pytest.raises(RealtimeInvalid) as info:
        ce.parse(json.dumps({"type": "conversation.item.truncate", "event_id": "e1",
                             "item_id": "i", "content_index": 0, "audio_end_ms": -1}))
    assert (info.value.event_id, info.value.param, info.value.code) == (
        "e1", "audio_end_ms", "invalid_value")
    with pytest.raises(RealtimeInvalid) as info:
        ce.parse('{"type": "response.cancel", "event_id": "e2", "extra": 1}')
    assert (info.value.event_id, info.value.code, info.value.param) == (
        "e2", "unknown_parameter", "extra")
    with pytest.raises(RealtimeInvalid) as info:
        ce.parse(b"\x00binary")
    assert info.value.code == "invalid_event" and info.value.event_id is None
    with pytest.raises(RealtimeInvalid) as info:
        ce.parse(json.dumps({"type": "response.cancel", "event_id": "x" * 65}))
    assert info.value.param == "event_id"


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "response.create", "response": {"temperature": NaN}}',
        '{"type": "response.cancel", "type": "session.update"}',
    ],
)
def test_non_json_constants_and_duplicate_keys_are_invalid_json(frame: str) -> None:
    with pytest.raises(RealtimeInvalid) as info:
        ce.parse(frame)
    assert info.value.code == "invalid_json"


def test_parse_commands() -> None:
    audio = base64.b64encode(b"\x01\x00\x02\x00").decode()
    cmd = ce.parse(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
    assert cmd == ce.AudioAppend(None, b"\x01\x00\x02\x00")
    cmd = ce.parse(json.dumps({"type": "response.create", "event_id": "r",
                               "response": {"instructions": "Shout.", "max_output_tokens": 5}}))
    assert isinstance(cmd, ce.ResponseCreate)
    assert cmd.options.instructions == "Shout." and cmd.options.max_output_tokens == 5


def test_semantic_vad_and_server_vad_map_onto_our_vad() -> None:
    s = apply_update(RealtimeSettings(), {"audio": {"input": {"turn_detection": {
        "type": "semantic_vad", "eagerness": "high"}}}})
    assert s.turn_detection is not None and s.turn_detection.vad().stop_ms == 350
    s = apply_update(s, {"audio": {"input": {"turn_detection": {
        "type": "server_vad", "silence_duration_ms": 800, "threshold": 0.9}}}})
    assert s.turn_detection is not None
    assert (s.turn_detection.vad().stop_ms, s.turn_detection.vad().aggressiveness) == (800, 3)
    with pytest.raises(RealtimeInvalid) as info:
        apply_update(s, {"audio": {"input": {"turn_detection": {"type": "semantic_vad",
                                                                "threshold": 0.5}}}})
    assert info.value.param == "session.audio.input.turn_detection.threshold"
    with pytest.raises(RealtimeInvalid):
        apply_update(s, {"type": "transcription"})


def _answer(conv: RealtimeConversation, turn: int, text: str) -> list[dict[str, object]]:
    events = conv.runtime(ev(EventType.TURN_STARTED, turn, user_text="hi"))
    events += conv.runtime(ev(EventType.ASSISTANT_TEXT, turn, delta=text))
    marks, at = [], 0
    for word in text.split():
        marks.append(WordMark(word, at, at + 2400))
        at += 2400
    events += conv.audio(OutFrame(turn, np.zeros(at, np.int16), 0, tuple(marks)))
    return events


def test_truncate_keeps_the_words_heard_and_refuses_beyond_the_audio() -> None:
    conv = RealtimeConversation("sess_x")
    _answer(conv, 1, "one two three four")  # 4 words of 100 ms each
    done = conv.runtime(ev(EventType.TURN_COMPLETED, 1, heard_text="one two three four"))
    item_id = done[-2]["response"]["output"][0]["id"]  # type: ignore[index]
    with pytest.raises(RealtimeInvalid) as info:
        conv.truncate(item_id, 401)
    assert info.value.code == "audio_end_ms_beyond_audio"
    events, report = conv.truncate(item_id, 250)
    assert report is None and events[0]["audio_end_ms"] == 250
    assert conv.items[item_id].transcript == "one two"
    conv.request_response(ce.ResponseOptions())
    conv.runtime(ev(EventType.TURN_STARTED, 2, user_text="x"))
    assistant = [m.content for m in conv.model_request(2).messages if m.role == "assistant"]
    assert assistant == ["one two"]


def test_a_stopped_response_emits_no_audio_and_no_function_call() -> None:
    conv = RealtimeConversation("sess_x")
    _answer(conv, 1, "hello there")
    conv.runtime(ev(EventType.BARGE_IN, 1, reason="barge_in"))
    assert conv.audio(OutFrame(1, np.zeros(480, np.int16), 4800)) == []
    assert conv.function_call(1, "f", "{}") == []
    done = conv.runtime(ev(EventType.TURN_CANCELLED, 1, reason="barge_in", heard_text="hello"))
    response = done[-2]["response"]
    assert response["status"] == "cancelled"  # type: ignore[index]
    assert response["status_details"]["reason"] == "turn_detected"  # type: ignore[index]
    assert response["output"][0]["content"][0]["transcript"] == "hello"  # type: ignore[index]


def test_g711_output_is_8_khz() -> None:
    conv = RealtimeConversation("sess_x", RealtimeSettings(output_format="audio/pcmu"))
    events = _answer(conv, 1, "a b c")
    deltas = [e for e in events if e["type"] == "response.output_audio.delta"]
    data = base64.b64decode(str(deltas[0]["delta"]))
    # 300 ms at 24 kHz -> one byte per 8 kHz sample (less the resampler's start-up delay).
    assert 2300 <= len(data) <= 2400


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=4),
    max_leaves=12,
)
_types = st.sampled_from([*sorted(ce._KEYS), "x", ""])


@settings(max_examples=300, deadline=None)
@given(kind=_types, body=st.dictionaries(
    st.sampled_from(["event_id", "session", "audio", "item", "item_id", "content_index",
                     "audio_end_ms", "response", "response_id", "previous_item_id", "zz"]),
    _json, max_size=4))
def test_any_event_is_a_command_or_a_refusal(kind: str, body: dict[str, object]) -> None:
    """Whatever a client sends, parsing and applying it to the state gives events or a
    `RealtimeInvalid`, never another exception."""
    conv = RealtimeConversation("sess_f")
    try:
        cmd = ce.parse(json.dumps({"type": kind, **body}))
        match cmd:
            case ce.SessionUpdate(session=s):
                conv.session_updated(apply_update(conv.settings, s))
            case ce.ItemCreate(item=item, previous_item_id=previous):
                conv.create_item(item, previous)
            case ce.ItemRetrieve(item_id=i):
                conv.retrieve(i)
            case ce.ItemDelete(item_id=i):
                conv.delete(i)
            case ce.ItemTruncate(item_id=i, audio_end_ms=end):
                conv.truncate(i, end)
            case ce.ResponseCreate(options=o):
                conv.request_response(o)
            case ce.ResponseCancel(response_id=r):
                conv.cancel(r)
    except RealtimeInvalid as exc:
        assert exc.to_event()["error"]["code"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60) | st.binary(max_size=30))
def test_any_frame_parses_or_is_refused(frame: str | bytes) -> None:
    try:
        ce.parse(frame)
    except RealtimeInvalid:
        pass


def test_truncate_during_the_response_is_a_playback_report() -> None:
    conv = RealtimeConversation("sess_x")
    events = _answer(conv, 3, "one two three four")
    item_id = next(e["item"]["id"] for e in events  # type: ignore[index]
                   if e["type"] == "response.output_item.added")
    _, report = conv.truncate(item_id, 200)
    assert report == (3, 4800)  # turn 3 heard 200 ms at 24 kHz
    done = conv.runtime(ev(EventType.TURN_CANCELLED, 3, reason="client", heard_text="one two"))
    assert done[-2]["response"]["output"][0]["content"][0]["transcript"] == "one two"  # type: ignore[index]


def test_the_model_context_is_bounded_newest_first() -> None:
    conv = RealtimeConversation("sess_x", RealtimeSettings(instructions="Rules."))
    conv.history_chars = 25
    for n in range(5):
        conv.create_item(ce.NewItem(None, "message", role="user",
                                    content=({"type": "input_text", "text": f"message {n}"},)),
                         None)
    messages = conv.model_request(1).messages
    assert [m.content for m in messages] == ["Rules.", "message 3", "message 4"]
