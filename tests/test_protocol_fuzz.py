"""Property tests of the WebSocket codec and the session options (hypothesis).

Whatever arrives — any text (lone surrogates, non-BMP characters, control characters), any JSON
shaped like our messages, any bytes — the server's codec either returns a typed message or
raises `RemoteProtocolError` with a stable code; nothing else escapes it. What it accepts is
within the documented bounds, and whatever the server sends is valid UTF-8 the client's codec
parses back (or a `LocalProtocolError`, never a frame the WebSocket library cannot encode).
`bench/fuzz_ws.py` runs the same generators against a real server over real sockets."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bargein.transports.protocol import (
    CLIENT_PARSERS,
    MAX_OPTION_NUMBER,
    MAX_OPTION_VALUE_CHARS,
    AssistantText,
    ClientProtocol,
    ErrorCode,
    HistoryEntry,
    LocalProtocolError,
    RemoteProtocolError,
    ServerMessage,
    ServerProtocol,
    SessionStart,
    SessionStarted,
    StatusMessage,
    Text,
    TranscriptFinal,
    TurnStarted,
    scalar_text,
)
from bargein.transports.protocol.codec import SURROGATE_RE

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CODES = frozenset(code.value for code in ErrorCode)

# Every character class that has bitten a codec: lone surrogates, non-BMP, controls, NUL.
odd_text = st.text(
    st.characters(codec=None, categories=None, exclude_categories=()),  # all code points
    max_size=300,
) | st.sampled_from(["\ud800", "\udfff", "a\ud83d", "\ude00b", "\x00", "\x1b[2J", "\U0001f600"])
long_text = st.integers(250, 5000).map(lambda n: "x" * n)
json_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | odd_text
    | long_text
)
json_value = st.recursive(
    json_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=12,
)
valid_name = st.from_regex(r"[a-z][a-z0-9_.]{0,39}", fullmatch=True)
# Mostly well-formed names and scalar values, so the value bounds are what decides; and some
# dictionaries of anything at all.
options = st.dictionaries(valid_name, json_scalar, max_size=4) | st.dictionaries(
    valid_name | odd_text, json_value, max_size=20
)
types = st.sampled_from([*CLIENT_PARSERS, "session.started", "nope", ""])


def started_server() -> ServerProtocol:
    server = ServerProtocol()
    server.receive('{"type":"session.start","v":1,"sample_rate":16000}')
    server.send(SessionStarted("s1", 16000, 16000))
    return server


def strings_in(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in (*strings_in(k), *strings_in(v))]
    if isinstance(value, list | tuple):
        return [s for v in value for s in strings_in(v)]
    return []


def receive(server: ServerProtocol, frame: str | bytes) -> Any:
    """The message, or the stable code it was refused with; any other exception fails."""
    try:
        return server.receive(frame)
    except RemoteProtocolError as error:
        assert error.code.value in CODES
        return error.code


@FUZZ
@given(frame=odd_text | long_text)
def test_any_text_frame_gets_a_message_or_a_code(frame: str) -> None:
    receive(started_server(), frame)
    receive(ServerProtocol(), frame)


@FUZZ
@given(
    kind=types,
    version=st.sampled_from([1, 1.0, True, "1", 2, None]),
    body=st.dictionaries(
        st.sampled_from(
            [
                "text",
                "turn",
                "played_samples",
                "sample_rate",
                "output_rate",
                "session_id",
                "resume_secret",
                "token",
                "options",
            ]
        )
        | odd_text,
        json_value,
        max_size=6,
    ),
)
def test_message_shaped_json_gets_a_message_or_a_code(
    kind: str, version: object, body: dict[str, Any]
) -> None:
    obj = {**body, "type": kind, "v": version}
    frame = json.dumps(obj, ensure_ascii=bool(len(body) % 2))  # escaped and raw surrogates
    for server in (ServerProtocol(), started_server()):
        result = receive(server, frame)
        if isinstance(result, ErrorCode):
            continue
        assert version == 1 and type(version) is int
        # Nothing accepted carries a lone surrogate: it could not be echoed.
        fields = [getattr(result, name, None) for name in result.__slots__]
        assert not any(SURROGATE_RE.search(s) for s in strings_in(fields))


@FUZZ
@given(opts=options, rate=st.sampled_from([16000, 16000.0, "16000", True, 11025, 2**64]))
def test_session_options_are_bounded_or_refused(opts: dict[str, Any], rate: object) -> None:
    frame = json.dumps({"type": "session.start", "v": 1, "sample_rate": rate, "options": opts})
    result = receive(ServerProtocol(), frame)
    if isinstance(result, ErrorCode):
        if type(rate) is not int:
            assert result in (ErrorCode.BAD_FIELD, ErrorCode.BAD_JSON)
        return
    assert isinstance(result, SessionStart) and result.sample_rate == 16000
    for name, value in result.options.items():
        assert name.isascii() and len(name) <= 40
        if isinstance(value, str):
            assert len(value) <= MAX_OPTION_VALUE_CHARS
            assert not any(ord(c) < 0x20 or 0x7F <= ord(c) <= 0x9F for c in value)
            assert not SURROGATE_RE.search(value)
        elif not isinstance(value, bool):
            assert isinstance(value, int | float)
            assert math.isfinite(value) and abs(value) <= MAX_OPTION_NUMBER


@FUZZ
@given(text=odd_text)
def test_typed_text_that_is_accepted_can_be_echoed(text: str) -> None:
    server = started_server()
    result = receive(server, json.dumps({"type": "text", "v": 1, "text": text}))
    if isinstance(result, Text):
        frame = server.send(TurnStarted(1, user_text=result.text, t=0.0))
        assert isinstance(frame, str)
        frame.encode("utf-8")  # what wsproto does; a surrogate would raise here


@FUZZ
@given(text=odd_text, turn=st.integers(0, 2**32 - 1))
def test_what_the_server_sends_is_utf8_the_client_parses(text: str, turn: int) -> None:
    server = started_server()
    client = ClientProtocol()
    client.started = True
    messages: list[ServerMessage] = [
        AssistantText(turn, text, 1.0),
        TranscriptFinal(text, 1, 1.0),
        StatusMessage("info", text, tool=text[:200]),
        AssistantText(turn, scalar_text(text), 1.0),
    ]
    for message in messages:
        try:
            frame = server.send(message)
        except LocalProtocolError as error:
            assert error.code in (ErrorCode.BAD_FIELD, ErrorCode.FRAME_TOO_LARGE)
            assert message is not messages[-1] or len(text) > 300  # sanitized text always goes
            continue
        assert isinstance(frame, str)
        frame.encode("utf-8")
        assert client.receive(frame) == message


@FUZZ
@given(entries=st.lists(st.tuples(st.sampled_from(["user", "assistant"]), odd_text | long_text)))
def test_session_started_with_any_history_is_sendable(entries: list[tuple[str, str]]) -> None:
    from bargein.transports.protocol import history_within

    server = ServerProtocol()
    server.receive('{"type":"session.start","v":1,"sample_rate":16000}')
    history = history_within(
        tuple(HistoryEntry(role, scalar_text(content)) for role, content in entries)  # type: ignore[arg-type]
    )
    frame = server.send(SessionStarted("s1", 16000, 16000, resume_secret="s" * 43, history=history))
    assert isinstance(frame, str)
    frame.encode("utf-8")
    client = ClientProtocol()
    back = client.receive(frame)
    assert isinstance(back, SessionStarted) and back.history == history


@FUZZ
@given(data=st.binary(max_size=40_000))
def test_any_binary_frame_gets_audio_or_a_code(data: bytes) -> None:
    receive(started_server(), data)
    receive(ServerProtocol(), data)
