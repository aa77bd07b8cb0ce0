"""The pure wire-protocol codec: round trips, and every malformed input gets its stable code."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from bargein.transports.protocol import (
    AUDIO_HEADER,
    MAX_INPUT_TEXT_CHARS,
    MAX_TEXT_FRAME_CHARS,
    SUPPORTED_RATES,
    AssistantText,
    AudioEnd,
    AudioIn,
    AudioOut,
    Capabilities,
    Clear,
    ClientMessage,
    ClientProtocol,
    ErrorCode,
    ErrorMessage,
    HistoryEntry,
    Interrupt,
    LocalProtocolError,
    Playback,
    RemoteProtocolError,
    ServerMessage,
    ServerProtocol,
    SessionEnded,
    SessionStart,
    SessionStarted,
    SpeechStarted,
    SpeechStopped,
    StatusMessage,
    Text,
    TranscriptFinal,
    TranscriptPartial,
    TurnEnded,
    TurnMark,
    TurnStarted,
    Words,
    WordSpan,
    decode_audio_out,
    encode_audio_out,
    history_within,
    max_audio_bytes,
)


def frame(**obj: Any) -> str:
    return json.dumps({"v": 1, **obj})


def started_server(rate: int = 16000, output_rate: int | None = None) -> ServerProtocol:
    server = ServerProtocol()
    start: dict[str, Any] = {"type": "session.start", "sample_rate": rate}
    if output_rate is not None:
        start["output_rate"] = output_rate
    server.receive(frame(**start))
    server.send(SessionStarted("s1", rate, output_rate or rate, max_audio_bytes=rate * 2))
    return server


def rejected(server: ServerProtocol, data: str | bytes | None) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        server.receive(data)
    return info.value


# --------------------------------------------------------------------------- round trips

CLIENT_MESSAGES: list[ClientMessage] = [
    SessionStart(16000),
    SessionStart(
        48000,
        output_rate=24000,
        session_id="abc_DEF-1",
        token="secret",
        options={"voice": "en", "speed": 1.25, "n": 3, "barge_in": True},
    ),
]
CONTROL_AFTER_START: list[ClientMessage] = [
    Text("hello there"),
    Interrupt(),
    Interrupt(turn=3),
    AudioEnd(),
]


@pytest.mark.parametrize("start", CLIENT_MESSAGES)
def test_client_messages_round_trip(start: SessionStart) -> None:
    client, server = ClientProtocol(), ServerProtocol()
    assert server.receive(client.send(start)) == start
    assert server.output_rate == (start.output_rate or start.sample_rate)
    pcm = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    audio = client.send(AudioIn(pcm))
    assert audio == pcm.astype("<i2").tobytes()
    received = server.receive(audio)
    assert isinstance(received, AudioIn)
    assert received.pcm.dtype == np.int16
    np.testing.assert_array_equal(received.pcm, pcm)
    for message in CONTROL_AFTER_START:
        assert server.receive(client.send(message)) == message
    assert server.input_ended and client.input_ended
    assert not server.rejections


SERVER_MESSAGES: list[ServerMessage] = [
    SpeechStarted(t=0.5),
    SpeechStopped(),
    TranscriptPartial("ask not", utterance=2, t=1.0),
    TranscriptFinal("ask not what", utterance=2, t=1.5),
    TurnStarted(1, user_text="hi", t=1.6),
    AssistantText(1, "Hello, ", t=1.7),
    Words(1, (WordSpan("Hello", 0, 4000), WordSpan("there", 4000, 9000))),
    TurnMark(1, "llm_first_token", t=1.65),
    StatusMessage("tool_started", "Looking that up…", turn=1, tool="search", t=2.0),
    Clear(1, t=2.1),
    TurnEnded(1, "interrupted", "Hello", 250, t=2.1),
    TurnEnded(2, "completed", "", 0),
    ErrorMessage("bad_json", "not valid JSON", fatal=False),
    SessionEnded("client_closed", t=9.0),
]


def test_server_messages_round_trip() -> None:
    server, client = ServerProtocol(), ClientProtocol()
    server.receive(client.send(SessionStart(16000, output_rate=24000)))
    started = SessionStarted("s1", 16000, 24000, max_audio_bytes=32000, t=0.0)
    assert client.receive(server.send(started)) == started
    assert client.session_id == "s1" and client.output_rate == 24000
    for message in SERVER_MESSAGES:
        encoded = server.send(message)
        assert isinstance(encoded, str)
        obj = json.loads(encoded)
        assert obj["type"] == message.TYPE and obj["v"] == 1
        assert client.receive(encoded) == message
    pcm = np.arange(-100, 100, dtype=np.int16)
    audio = server.send(AudioOut(turn=7, start=480, pcm=pcm))
    assert isinstance(audio, bytes)
    assert audio[: AUDIO_HEADER.size] == AUDIO_HEADER.pack(1, 0, 0, 7, 480)
    back = client.receive(audio)
    assert isinstance(back, AudioOut)
    assert (back.turn, back.start, back.end) == (7, 480, 680)
    np.testing.assert_array_equal(back.pcm, pcm)


def test_fatal_error_closes_both_ends() -> None:
    server, client = ServerProtocol(), ClientProtocol()
    server.receive(client.send(SessionStart(16000)))
    client.receive(server.send(SessionStarted("s1", 16000, 16000)))
    client.receive(server.send(ErrorMessage("slow_consumer", "bye", fatal=True)))
    assert server.closed and client.closed
    with pytest.raises(LocalProtocolError) as info:
        server.send(SpeechStarted())
    assert info.value.code == ErrorCode.CLOSED
    with pytest.raises(LocalProtocolError):
        client.send(Interrupt())
    assert rejected(server, frame(type="interrupt")).code == ErrorCode.CLOSED
    assert rejected(server, b"\0\0").code == ErrorCode.CLOSED


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("", ErrorCode.BAD_JSON),
        ("{", ErrorCode.BAD_JSON),
        ("{'type': 'text'}", ErrorCode.BAD_JSON),
        ('{"type":"text","v":1,"text":"a",}', ErrorCode.BAD_JSON),
        ('{"type":"playback","v":1,"turn":NaN,"played_samples":0}', ErrorCode.BAD_JSON),
        ('{"type":"playback","v":1,"turn":Infinity,"played_samples":0}', ErrorCode.BAD_JSON),
        ('{"type":"text","type":"interrupt","v":1}', ErrorCode.BAD_JSON),
        ("[" * 100_000 + "]" * 100_000, ErrorCode.FRAME_TOO_LARGE),
        ("[" * 30_000 + "]" * 30_000, ErrorCode.BAD_JSON),
        ("\ud800", ErrorCode.BAD_JSON),
        ("[]", ErrorCode.NOT_OBJECT),
        ('"session.start"', ErrorCode.NOT_OBJECT),
        ("null", ErrorCode.NOT_OBJECT),
        ("42", ErrorCode.NOT_OBJECT),
        ('{"v":1}', ErrorCode.MISSING_TYPE),
        ('{"type":5,"v":1}', ErrorCode.MISSING_TYPE),
        ('{"type":null,"v":1}', ErrorCode.MISSING_TYPE),
        ('{"type":"session.start","sample_rate":16000}', ErrorCode.BAD_VERSION),
        ('{"type":"session.start","v":2,"sample_rate":16000}', ErrorCode.BAD_VERSION),
        ('{"type":"session.start","v":"1","sample_rate":16000}', ErrorCode.BAD_VERSION),
        ('{"type":"session.start","v":true,"sample_rate":16000}', ErrorCode.BAD_VERSION),
        ('{"type":"session.start","v":1.5,"sample_rate":16000}', ErrorCode.BAD_VERSION),
        ('{"type":"session.start","v":1.0,"sample_rate":16000}', ErrorCode.BAD_VERSION),
        ('{"type":"nope","v":2}', ErrorCode.BAD_VERSION),
        ('{"type":"nope","v":1}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":"session.started","v":1}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":"audio","v":1}', ErrorCode.UNKNOWN_TYPE),
        ('{"type":"session.start","v":1}', ErrorCode.MISSING_FIELD),
        ('{"type":"session.start","v":1,"sample_rate":null}', ErrorCode.MISSING_FIELD),
        ('{"type":"session.start","v":1,"sample_rate":12345}', ErrorCode.BAD_SAMPLE_RATE),
        ('{"type":"session.start","v":1,"sample_rate":"16000"}', ErrorCode.BAD_FIELD),
        ('{"type":"session.start","v":1,"sample_rate":16000.0}', ErrorCode.BAD_FIELD),
        ('{"type":"session.start","v":1,"sample_rate":true}', ErrorCode.BAD_FIELD),
        ('{"type":"session.start","v":1,"sample_rate":0}', ErrorCode.BAD_SAMPLE_RATE),
        ('{"type":"session.start","v":1,"sample_rate":96000}', ErrorCode.BAD_SAMPLE_RATE),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"output_rate":11025}',
            ErrorCode.BAD_SAMPLE_RATE,
        ),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"session_id":"../etc"}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"session_id":""}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"session_id":7}',
            ErrorCode.BAD_FIELD,
        ),
        ('{"type":"session.start","v":1,"sample_rate":16000,"token":1}', ErrorCode.BAD_FIELD),
        ('{"type":"session.start","v":1,"sample_rate":16000,"options":[]}', ErrorCode.BAD_FIELD),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"options":{"Bad Key":1}}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"options":{"a":{"nested":1}}}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"options":{"a":null}}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"options":{"a":[1]}}',
            ErrorCode.BAD_FIELD,
        ),
        (
            '{"type":"session.start","v":1,"sample_rate":16000,"options":{"a":1e400}}',
            ErrorCode.BAD_FIELD,
        ),
    ],
)
def test_bad_frames_before_start(data: str, code: ErrorCode) -> None:
    server = ServerProtocol()
    error = rejected(server, data)
    assert error.code == code, error
    assert not error.fatal
    assert server.rejections == {code.value: 1}
    assert not server.started


def test_options_and_token_limits() -> None:
    server = ServerProtocol()
    too_many = {f"k{i}": i for i in range(17)}
    error = rejected(server, frame(type="session.start", sample_rate=16000, options=too_many))
    assert error.code == ErrorCode.BAD_FIELD
    long_value = {"a": "x" * 1001}
    error = rejected(server, frame(type="session.start", sample_rate=16000, options=long_value))
    assert error.code == ErrorCode.BAD_FIELD
    error = rejected(server, frame(type="session.start", sample_rate=16000, token="t" * 4097))
    assert error.code == ErrorCode.BAD_FIELD
    assert server.rejections == {"bad_field": 3}


@pytest.mark.parametrize("rate", sorted(SUPPORTED_RATES))
def test_every_supported_rate_is_accepted(rate: int) -> None:
    server = ServerProtocol()
    server.receive(frame(type="session.start", sample_rate=rate))
    assert server.sample_rate == rate == server.output_rate
    assert len(server.receive(b"\0\0" * (rate // 50)).pcm) == rate // 50  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "message",
    [
        frame(type="text", text="hi"),
        frame(type="audio.end"),
        frame(type="interrupt"),
        frame(type="playback", turn=0, played_samples=0),
    ],
)
def test_control_before_start_is_rejected(message: str) -> None:
    server = ServerProtocol()
    assert rejected(server, message).code == ErrorCode.NOT_STARTED


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\0\0", ErrorCode.NOT_STARTED),
        (b"", ErrorCode.NOT_STARTED),
    ],
)
def test_audio_before_start(data: bytes, code: ErrorCode) -> None:
    server = ServerProtocol()
    assert rejected(server, data).code == code
    assert server.rejections == {code.value: 1}


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.EMPTY_FRAME),
        (None, ErrorCode.EMPTY_FRAME),  # how quart delivers an empty binary frame
        (b"\0", ErrorCode.ODD_LENGTH),
        (b"\0" * 321, ErrorCode.ODD_LENGTH),
        (b"\0" * (32000 + 2), ErrorCode.FRAME_TOO_LARGE),
        (b"\0" * 1_000_001, ErrorCode.FRAME_TOO_LARGE),
    ],
)
def test_bad_audio_after_start(data: bytes | None, code: ErrorCode) -> None:
    server = started_server(16000)
    assert rejected(server, data).code == code
    # The session survives: good audio still goes through.
    assert len(server.receive(b"\x01\x00" * 320).pcm) == 320  # type: ignore[union-attr]


def test_audio_limit_follows_declared_rate() -> None:
    assert max_audio_bytes(8000) == 16000
    assert max_audio_bytes(48000) == 96000
    server = started_server(48000)
    assert isinstance(server.receive(b"\0" * 96000), AudioIn)
    assert rejected(server, b"\0" * 96002).code == ErrorCode.FRAME_TOO_LARGE


def test_audio_is_little_endian() -> None:
    server = started_server()
    message = server.receive(b"\x01\x02\xff\x7f\x00\x80")
    assert isinstance(message, AudioIn)
    assert message.pcm.tolist() == [0x0201, 32767, -32768]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (frame(type="session.start", sample_rate=16000), ErrorCode.ALREADY_STARTED),
        (frame(type="text"), ErrorCode.MISSING_FIELD),
        (frame(type="text", text=5), ErrorCode.BAD_FIELD),
        (frame(type="text", text=["a"]), ErrorCode.BAD_FIELD),
        (frame(type="text", text=""), ErrorCode.EMPTY_TEXT),
        (frame(type="text", text=" \n\t "), ErrorCode.EMPTY_TEXT),
        (frame(type="text", text="x" * (MAX_INPUT_TEXT_CHARS + 1)), ErrorCode.TEXT_TOO_LONG),
        (frame(type="text", text="x" * (MAX_TEXT_FRAME_CHARS + 1)), ErrorCode.FRAME_TOO_LARGE),
        (frame(type="interrupt", turn=-1), ErrorCode.BAD_FIELD),
        (frame(type="interrupt", turn="1"), ErrorCode.BAD_FIELD),
        (frame(type="interrupt", turn=1.0), ErrorCode.BAD_FIELD),
        (frame(type="interrupt", turn=2**32), ErrorCode.BAD_FIELD),
        (frame(type="playback", turn=1), ErrorCode.MISSING_FIELD),
        (frame(type="playback", played_samples=1), ErrorCode.MISSING_FIELD),
        (frame(type="playback", turn=True, played_samples=1), ErrorCode.BAD_FIELD),
        (frame(type="playback", turn=1, played_samples=-5), ErrorCode.BAD_FIELD),
        (frame(type="playback", turn=1, played_samples=0), ErrorCode.UNKNOWN_TURN),
    ],
)
def test_bad_control_after_start(data: str, code: ErrorCode) -> None:
    server = started_server()
    error = rejected(server, data)
    assert error.code == code, error
    assert server.rejections == {code.value: 1}
    assert server.receive(frame(type="interrupt")) == Interrupt()


def test_playback_is_checked_against_audio_sent() -> None:
    server = started_server(16000, output_rate=24000)
    server.send(AudioOut(1, 0, np.zeros(480, np.int16)))
    server.send(AudioOut(1, 480, np.zeros(480, np.int16)))
    assert server.receive(frame(type="playback", turn=1, played_samples=960)) == Playback(1, 960)
    assert server.receive(frame(type="playback", turn=1, played_samples=0)) == Playback(1, 0)
    error = rejected(server, frame(type="playback", turn=1, played_samples=961))
    assert error.code == ErrorCode.PLAYBACK_AHEAD
    assert rejected(server, frame(type="playback", turn=2, played_samples=0)).code == (
        ErrorCode.UNKNOWN_TURN
    )
    # Only recent turns are remembered.
    for turn in range(2, 2 + 64):
        server.send(AudioOut(turn, 0, np.zeros(10, np.int16)))
    assert rejected(server, frame(type="playback", turn=1, played_samples=0)).code == (
        ErrorCode.UNKNOWN_TURN
    )
    assert server.receive(frame(type="playback", turn=65, played_samples=10)) == Playback(65, 10)


def test_input_after_audio_end() -> None:
    server = started_server()
    server.receive(frame(type="audio.end"))
    assert rejected(server, b"\0\0").code == ErrorCode.INPUT_ENDED
    assert rejected(server, frame(type="text", text="hi")).code == ErrorCode.INPUT_ENDED
    assert rejected(server, frame(type="audio.end")).code == ErrorCode.INPUT_ENDED
    # Controls about the reply still work: the user may still interrupt it.
    assert server.receive(frame(type="interrupt")) == Interrupt()
    assert server.rejections == {"input_ended": 3}


def test_unknown_fields_are_ignored_for_additive_evolution() -> None:
    server = ServerProtocol()
    message = server.receive(frame(type="session.start", sample_rate=16000, future={"x": 1}))
    assert message == SessionStart(16000)


def test_rejections_are_counted_and_too_many_is_fatal() -> None:
    server = ServerProtocol(max_rejections=3)
    for data in ("{", "[]", '{"v":1}'):
        assert not rejected(server, data).fatal
    error = rejected(server, "{")
    assert error.code == ErrorCode.TOO_MANY_ERRORS and error.fatal
    assert server.receive_closed and not server.closed
    assert rejected(server, frame(type="interrupt")).code == ErrorCode.CLOSED
    assert server.rejections == {
        "bad_json": 2,
        "not_object": 1,
        "missing_type": 1,
        "too_many_errors": 1,
        "closed": 1,
    }
    assert server.rejected_total == 6
    reply = server.error_message(error)
    assert reply == ErrorMessage("too_many_errors", error.message, fatal=True)
    # A fatal error frame can still be sent, and then nothing more.
    assert json.loads(server.send(reply))["fatal"] is True
    assert server.closed
    with pytest.raises(LocalProtocolError):
        server.send(reply)


def test_error_frame_for_a_rejection() -> None:
    server = ServerProtocol()
    error = rejected(server, "nope")
    encoded = server.send(server.error_message(error))
    assert isinstance(encoded, str)
    obj = json.loads(encoded)
    assert obj == {
        "type": "error",
        "v": 1,
        "code": "bad_json",
        "message": error.message,
        "fatal": False,
    }


# --------------------------------------------------------------------------- local errors


def test_server_refuses_to_break_the_protocol() -> None:
    server = ServerProtocol()

    def local(message: ServerMessage) -> ErrorCode:
        with pytest.raises(LocalProtocolError) as info:
            server.send(message)
        return info.value.code

    assert local(SessionStarted("s", 16000, 16000)) == ErrorCode.NOT_STARTED
    server.receive(frame(type="session.start", sample_rate=16000, output_rate=24000))
    assert local(SpeechStarted()) == ErrorCode.NOT_STARTED
    assert local(AudioOut(1, 0, np.zeros(4, np.int16))) == ErrorCode.NOT_STARTED
    assert local(SessionStarted("s", 16000, 16000)) == ErrorCode.BAD_SAMPLE_RATE
    assert local(SessionStarted("bad id!", 16000, 24000)) == ErrorCode.BAD_FIELD
    server.send(SessionStarted("s", 16000, 24000))
    assert local(SessionStarted("s", 16000, 24000)) == ErrorCode.ALREADY_STARTED
    assert local(AudioOut(1, 0, np.zeros(0, np.int16))) == ErrorCode.EMPTY_FRAME
    assert local(AudioOut(1, 0, np.zeros(24001, np.int16))) == ErrorCode.FRAME_TOO_LARGE
    assert local(AudioOut(-1, 0, np.zeros(4, np.int16))) == ErrorCode.BAD_FIELD
    assert local(AudioOut(1, 2**32 - 2, np.zeros(4, np.int16))) == ErrorCode.BAD_FIELD
    assert local(TurnEnded(1, "maybe", "", 0)) == ErrorCode.BAD_FIELD  # type: ignore[arg-type]
    assert local(TurnEnded(1, "completed", "", -1)) == ErrorCode.BAD_FIELD
    assert local(SpeechStarted(t=float("nan"))) == ErrorCode.BAD_FIELD
    assert local(SpeechStarted(t=-1.0)) == ErrorCode.BAD_FIELD
    assert local(TurnMark(1, "Not A Mark")) == ErrorCode.BAD_FIELD
    assert local(Words(1, (WordSpan("a", 5, 4),))) == ErrorCode.BAD_FIELD
    assert local(Words(1, tuple(WordSpan("a", 0, 1) for _ in range(257)))) == ErrorCode.BAD_FIELD
    assert local(TranscriptFinal("x" * 20_001)) == ErrorCode.BAD_FIELD
    # None of that was the client's fault.
    assert not server.rejections


def test_client_refuses_to_break_the_protocol() -> None:
    client = ClientProtocol()

    def local(message: ClientMessage) -> ErrorCode:
        with pytest.raises(LocalProtocolError) as info:
            client.send(message)
        return info.value.code

    assert local(Text("hi")) == ErrorCode.NOT_STARTED
    assert local(AudioIn(np.zeros(2, np.int16))) == ErrorCode.NOT_STARTED
    assert local(SessionStart(11025)) == ErrorCode.BAD_SAMPLE_RATE
    client.send(SessionStart(8000))
    assert local(SessionStart(8000)) == ErrorCode.ALREADY_STARTED
    assert local(AudioIn(np.zeros(0, np.int16))) == ErrorCode.EMPTY_FRAME
    assert local(AudioIn(np.zeros(8001, np.int16))) == ErrorCode.FRAME_TOO_LARGE
    assert local(Text("")) == ErrorCode.EMPTY_TEXT
    client.send(AudioEnd())
    assert local(Text("late")) == ErrorCode.INPUT_ENDED
    assert local(AudioIn(np.zeros(2, np.int16))) == ErrorCode.INPUT_ENDED
    assert json.loads(client.send(Playback(1, 10))) == json.loads(
        frame(type="playback", turn=1, played_samples=10)
    )


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", ErrorCode.BAD_AUDIO_HEADER),
        (AUDIO_HEADER.pack(1, 0, 0, 1, 0), ErrorCode.BAD_AUDIO_HEADER),
        (AUDIO_HEADER.pack(2, 0, 0, 1, 0) + b"\0\0", ErrorCode.BAD_AUDIO_HEADER),
        (AUDIO_HEADER.pack(1, 1, 0, 1, 0) + b"\0\0", ErrorCode.BAD_AUDIO_HEADER),
        (AUDIO_HEADER.pack(1, 0, 0, 1, 0) + b"\0", ErrorCode.ODD_LENGTH),
        ('{"type":"turn.ended","v":1,"turn":1,"status":"x","heard":"","heard_ms":0}', "bad_field"),
        ('{"type":"session.start","v":1,"sample_rate":16000}', ErrorCode.UNKNOWN_TYPE),
    ],
)
def test_client_rejects_bad_server_frames(data: str | bytes, code: str) -> None:
    client = ClientProtocol()
    client.send(SessionStart(16000))
    client.receive(
        frame(
            type="session.started",
            session_id="s",
            sample_rate=16000,
            output_rate=16000,
            protocol=1,
            max_audio_bytes=0,
            resumed=False,
        )
    )
    with pytest.raises(RemoteProtocolError) as info:
        client.receive(data)
    assert info.value.code == code
    assert client.rejections == {str(code): 1}


def test_client_rejects_audio_before_session_started() -> None:
    client = ClientProtocol()
    with pytest.raises(RemoteProtocolError) as info:
        client.receive(encode_audio_out(AudioOut(1, 0, np.zeros(2, np.int16))))
    assert info.value.code == ErrorCode.NOT_STARTED


def test_audio_out_codec_is_exact() -> None:
    pcm = np.array([1, -2, 300], dtype=np.int16)
    data = encode_audio_out(AudioOut(2**32 - 1, 12345, pcm))
    assert len(data) == 12 + 6
    assert data[12:] == b"\x01\x00\xfe\xff\x2c\x01"
    back = decode_audio_out(data)
    assert (back.turn, back.start, back.pcm.tolist()) == (2**32 - 1, 12345, [1, -2, 300])


# --------------------------------------------------------------------------- exactness (issue 12)

START = '{"type":"session.start","v":1,"sample_rate":16000'


@pytest.mark.parametrize(
    "data",
    [
        START + ',"token":"\\ud800"}',
        START + ',"options":{"voice":"en\\udfff"}}',
        START + ',"future":["\\uDBFF"]}',
        START + ',"future\\ud800":1}',
        START + ',"options":{"voice":"\ud800"}}',  # a raw lone surrogate, not an escape
        '{"type":"text","v":1,"text":"hi \\ud83d"}',  # a high surrogate without its low half
        '{"type":"text","v":1,"text":"\\ude00 hi"}',  # a low one without its high half
    ],
)
def test_a_lone_surrogate_anywhere_is_bad_json(data: str) -> None:
    server = ServerProtocol()
    if data.startswith('{"type":"text"'):
        server = started_server()
    error = rejected(server, data)
    assert (error.code, error.fatal) == (ErrorCode.BAD_JSON, False)
    assert "surrogate" in error.message


def test_surrogate_pairs_are_text_and_survive_the_round_trip() -> None:
    server = started_server()
    message = server.receive('{"type":"text","v":1,"text":"smile \\ud83d\\ude00 \\\\ud800"}')
    assert message == Text("smile \U0001f600 \\ud800")
    encoded = server.send(TurnStarted(1, user_text=message.text))
    assert isinstance(encoded, str)
    encoded.encode("utf-8")  # what the WebSocket library does with it


@pytest.mark.parametrize(
    "message",
    [
        TurnStarted(1, user_text="a\ud800b"),
        AssistantText(1, "\udfff"),
        TranscriptFinal("x\udc80"),
        StatusMessage("info", "ok", tool="\ud800"),
    ],
)
def test_the_server_never_encodes_a_lone_surrogate(message: ServerMessage) -> None:
    server = started_server()
    with pytest.raises(LocalProtocolError) as info:
        server.send(message)
    assert info.value.code == ErrorCode.BAD_FIELD
    assert not server.rejections  # our bug, not the client's


@pytest.mark.parametrize(
    "options",
    [
        {"voice": "x" * 257},
        {"voice": "en\x00"},
        {"voice": "en\nx"},
        {"voice": "\x7f"},
        {"voice": "\x85"},
        {"rate_wpm": 10**6 + 1},
        {"rate_wpm": -(10**6) - 1},
        {"pitch": 1e7},
        {"pitch": -1e300},
        {"n": 10**400},
    ],
)
def test_option_values_are_bounded(options: dict[str, Any]) -> None:
    server = ServerProtocol()
    data = START + ',"options":' + json.dumps(options) + "}"
    error = rejected(server, data)
    assert error.code == ErrorCode.BAD_FIELD, error


def test_option_values_at_their_bounds_pass() -> None:
    server = ServerProtocol()
    options = {"voice": "é" * 256, "rate_wpm": 10**6, "pitch": -1e6, "on": False, "x": "\U0001f600"}
    assert server.receive(frame(type="session.start", sample_rate=16000, options=options)) == (
        SessionStart(16000, options=options)
    )


def test_resume_fields_round_trip() -> None:
    client, server = ClientProtocol(), ServerProtocol()
    start = SessionStart(16000, session_id="abc", resume_secret="s" * 43)
    assert server.receive(client.send(start)) == start
    started = SessionStarted(
        "abc",
        16000,
        16000,
        max_audio_bytes=32000,
        resumed=True,
        t=0.0,
        resume_secret="s" * 43,
        history=(HistoryEntry("user", "hi"), HistoryEntry("assistant", "Hel", interrupted=True)),
        capabilities=Capabilities(
            sample_rates=(8000, 16000),
            max_audio_bytes=32000,
            options={"voice": "espeak-ng voice"},
            policies=("onset", "confirm"),
        ),
    )
    encoded = server.send(started)
    obj = json.loads(encoded)
    assert obj["history"] == [
        {"role": "user", "content": "hi", "interrupted": False},
        {"role": "assistant", "content": "Hel", "interrupted": True},
    ]
    assert obj["capabilities"]["options"] == {"voice": "espeak-ng voice"}
    assert client.receive(encoded) == started
    stopped = SpeechStopped(t=1.5, speech_end=1.02)
    assert client.receive(server.send(stopped)) == stopped


@pytest.mark.parametrize(
    ("secret", "code"),
    [(7, ErrorCode.BAD_FIELD), ("x" * 257, ErrorCode.BAD_FIELD), ("", ErrorCode.BAD_FIELD)],
)
def test_resume_secret_field(secret: object, code: ErrorCode) -> None:
    data = frame(type="session.start", sample_rate=16000, session_id="a", resume_secret=secret)
    assert rejected(ServerProtocol(), data).code == code


def test_history_is_cut_to_fit_one_frame_oldest_first() -> None:
    entries = tuple(HistoryEntry("user", f"{i} " + "\x01" * 5000) for i in range(40))
    kept = history_within(entries)
    assert kept and kept[-1] == entries[-1] and len(kept) < len(entries)
    assert kept == entries[len(entries) - len(kept) :]
    server = started_server()
    server.started_sent = False
    encoded = server.send(SessionStarted("s1", 16000, 16000, history=kept, resume_secret="s" * 43))
    assert len(encoded) <= MAX_TEXT_FRAME_CHARS


def test_a_control_frame_over_the_limit_is_never_sent() -> None:
    server = started_server()
    with pytest.raises(LocalProtocolError) as info:
        server.send(TranscriptFinal("\x01" * 20_000))  # 6 characters each once escaped
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE
