"""The pure SSE encoder, parser and replay buffer (no event loop)."""

from __future__ import annotations

import pytest

from bargein.transports.sse import (
    Gap,
    Replay,
    ReplayBuffer,
    ReplayStore,
    SseComment,
    SseEncodeError,
    SseEvent,
    SseParser,
    StoreFull,
    encode_comment,
    encode_event,
    encode_retry,
    format_event_id,
    parse_event_id,
)


def parse_all(data: bytes) -> list[SseEvent | SseComment]:
    return SseParser().feed(data)


def test_event_framing() -> None:
    assert encode_event("hi", event="token", id="s:1") == b"id: s:1\nevent: token\ndata: hi\n\n"
    assert encode_event("x") == b"data: x\n\n"
    assert encode_event("x", retry=3000) == b"retry: 3000\ndata: x\n\n"


def test_multiline_data_is_split_on_every_line_break() -> None:
    encoded = encode_event("a\nb\r\nc\rd")
    assert encoded == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert parse_all(encoded) == [SseEvent("a\nb\nc\nd")]


def test_comment_and_retry() -> None:
    assert encode_comment() == b": ping\n\n"
    assert encode_retry(1500) == b"retry: 1500\n\n"
    parser = SseParser()
    assert parser.feed(encode_comment() + encode_retry(1500)) == [SseComment("ping")]
    assert parser.retry == 1500


@pytest.mark.parametrize(
    "kwargs",
    [
        {"id": "a\nb"},
        {"id": "a\rb"},
        {"id": "a\0b"},
        {"event": "a\nb"},
        {"event": ""},
        {"retry": -1},
    ],
)
def test_unframeable_fields_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(SseEncodeError):
        encode_event("x", **kwargs)  # type: ignore[arg-type]


def test_comment_with_line_break_is_refused() -> None:
    with pytest.raises(SseEncodeError):
        encode_comment("a\nb")
    with pytest.raises(SseEncodeError):
        encode_retry(-5)


@pytest.mark.parametrize(
    "data",
    ["", "plain", "trailing newline\n", "\n\nleading", "unicode ✓ ü 語", "a: b\nid: 3", " space"],
)
def test_round_trip_through_parser(data: str) -> None:
    encoded = encode_event(data, event="e", id="st:7")
    assert parse_all(encoded) == [SseEvent(data, "e", "st:7")]


def test_parser_handles_arbitrary_chunking_and_line_endings() -> None:
    stream = (
        "\ufeff: hello\r\n"
        "id: s:1\r\nevent: token\r\ndata: one\r\n\r\n"
        "data: two\rdata: lines\r\r"
        "data:nospace\n\n"
        "id: s:3\ndata: ✓\n\n"
    ).encode()
    expected = [
        SseComment("hello"),
        SseEvent("one", "token", "s:1"),
        SseEvent("two\nlines", "message", "s:1"),
        SseEvent("nospace", "message", "s:1"),
        SseEvent("✓", "message", "s:3"),
    ]
    assert parse_all(stream) == expected
    for size in (1, 2, 3, 7):
        parser = SseParser()
        got: list[SseEvent | SseComment] = []
        for i in range(0, len(stream), size):
            got += parser.feed(stream[i : i + size])
        assert got == expected, size


def test_parser_spec_corners() -> None:
    parser = SseParser()
    # No data: nothing dispatched, but the id still sticks.
    assert parser.feed(b"id: s:9\nevent: x\n\n") == []
    assert parser.last_event_id == "s:9"
    # An id with NUL is ignored; unknown fields are ignored; a field name alone means "".
    assert parser.feed(b"id: bad\0id\nfoo: bar\ndata\n\n") == [SseEvent("", "message", "s:9")]
    # Non-digit retry is ignored.
    parser.feed(b"retry: 12a\n\n")
    assert parser.retry is None
    # An unterminated event is not dispatched.
    assert parser.feed(b"data: half") == []


def test_event_ids() -> None:
    assert format_event_id("abc_-9", 12) == "abc_-9:12"
    assert parse_event_id("abc_-9:12") == ("abc_-9", 12)
    assert parse_event_id(" abc:0 ") == ("abc", 0)
    for bad in ["", "abc", ":3", "abc:", "abc:-1", "abc:1.5", "a b:3", "abc:٣", "x:" + "9" * 19]:
        assert parse_event_id(bad) is None, bad


def make_buffer(n: int, capacity: int = 4) -> ReplayBuffer:
    buffer = ReplayBuffer("st", capacity)
    for i in range(n):
        buffer.append("token", f"t{i + 1}")
    return buffer


def test_replay_after_returns_exactly_the_missed_events() -> None:
    buffer = make_buffer(3)
    assert buffer.last_seq == 3
    result = buffer.after(1)
    assert isinstance(result, Replay)
    assert [r.seq for r in result.records] == [2, 3]
    assert [r.data for r in result.records] == ["t2", "t3"]
    assert result.records[0].id == "st:2"
    assert result.records[0].encode() == b"id: st:2\nevent: token\ndata: t2\n\n"
    assert buffer.after(3) == Replay(())
    assert isinstance(buffer.after(0), Replay)
    assert len(buffer.after(0).records) == 3  # type: ignore[union-attr]


def test_replay_reports_a_gap_when_the_id_fell_out() -> None:
    buffer = make_buffer(10, capacity=4)
    assert buffer.oldest_seq == 7
    assert buffer.evicted == 6
    assert [r.seq for r in buffer.after(6).records] == [7, 8, 9, 10]  # type: ignore[union-attr]
    assert buffer.after(5) == Gap(5, 7, "evicted")
    assert buffer.after(0) == Gap(0, 7, "evicted")
    assert buffer.after(11) == Gap(11, 7, "ahead")
    assert buffer.after(-1) == Gap(-1, 7, "ahead")


def test_empty_buffer_and_finished_buffer() -> None:
    buffer = ReplayBuffer("st", 2)
    assert buffer.after(0) == Replay(())
    assert buffer.after(1) == Gap(1, None, "ahead")
    buffer.append("done", "{}")
    buffer.finish()
    with pytest.raises(RuntimeError):
        buffer.append("token", "late")
    with pytest.raises(SseEncodeError):
        ReplayBuffer("st", 2).append("bad\nname", "x")
    with pytest.raises(ValueError):
        ReplayBuffer("bad id", 2)
    with pytest.raises(ValueError):
        ReplayBuffer("st", 0)


def test_store_evicts_finished_streams_first_and_refuses_when_all_live() -> None:
    store = ReplayStore(max_streams=2, capacity=8)
    a, b = store.create("a"), store.create("b")
    with pytest.raises(ValueError):
        store.create("a")
    with pytest.raises(StoreFull):
        store.create("c")
    b.finish()
    store.create("c")
    assert store.get("b") is None
    assert store.get("a") is a
    a.finish()
    store.create("d")
    assert store.get("a") is None and len(store) == 2
    store.discard("d")
    store.discard("missing")
    assert len(store) == 1
