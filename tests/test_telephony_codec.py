"""The pure parts of the telephony transport: carrier codec, mark tracker, DTMF collector,
session options from custom parameters, the Twilio signature."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from bargein.dsp import ulaw_decode, ulaw_encode
from bargein.engines.base import Engines
from bargein.transports.telephony.carriers import TELNYX, TWILIO
from bargein.transports.telephony.codec import (
    CarrierCodec,
    Connected,
    Dtmf,
    MarkEcho,
    Media,
    Rejected,
    Start,
    Stop,
)
from bargein.transports.telephony.dtmf import DtmfCollector
from bargein.transports.telephony.handler import CallRefused, TelephonyServer, call_options
from bargein.transports.telephony.marks import Dropped, MarkTracker, Played, Unknown
from bargein.transports.telephony.signature import public_url, twilio_signature, twilio_signature_ok


def twilio_start(**params: str) -> str:
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZ1",
            "start": {
                "streamSid": "MZ1",
                "callSid": "CA1",
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": params,
            },
        }
    )


def media(payload: bytes, seq: int = 2, key: str = "sequenceNumber") -> str:
    body = {"track": "inbound", "chunk": "1", "timestamp": "20"}
    body["payload"] = base64.b64encode(payload).decode()
    return json.dumps({"event": "media", key: str(seq), "media": body})


def started() -> CarrierCodec:
    codec = CarrierCodec(TWILIO)
    assert isinstance(codec.feed(twilio_start(voice="en-us"))[0], Start)
    return codec


def test_twilio_start_media_mark_dtmf_stop() -> None:
    codec = CarrierCodec(TWILIO)
    assert codec.feed(json.dumps({"event": "connected", "protocol": "Call"})) == [Connected("Call")]
    [start] = codec.feed(twilio_start(voice="en-us", policy="confirm"))
    assert start == Start("MZ1", "CA1", "ulaw", 8000, {"voice": "en-us", "policy": "confirm"})
    tone = (8000 * np.sin(np.arange(160) / 3)).astype(np.int16)
    [m] = codec.feed(media(bytes(ulaw_encode(tone))))
    assert isinstance(m, Media) and m.timestamp_ms == 20 and m.chunk == 1
    assert np.array_equal(m.pcm, ulaw_decode(ulaw_encode(tone)))
    assert codec.feed('{"event":"mark","mark":{"name":"b1.t1.s160"}}') == [MarkEcho("b1.t1.s160")]
    assert codec.feed('{"event":"dtmf","dtmf":{"track":"inbound_track","digit":"5"}}') == [
        Dtmf("5")
    ]
    assert codec.feed('{"event":"stop","stop":{}}') == [Stop()]
    assert codec.feed(media(b"\xff" * 160)) == [Rejected("after_stop", "'media' after 'stop'")]
    assert not {k: v for k, v in codec.rejections.items() if k != "after_stop"}


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{nope", "bad_json"),
        # Not JSON by RFC 8259, though Python's json takes them; a duplicate key means
        # different things to different parsers.
        ('{"event":"media","media":{"payload":"AA==","timestamp":NaN}}', "bad_json"),
        ('{"event":"media","event":"stop"}', "bad_json"),
        ("[]", "not_object"),
        ('{"event":"warp"}', "unknown_type"),
        ('{"event":7}', "bad_field"),
        ('{"nothing":1}', "missing_field"),
        (b"\x00", "binary_frame"),
        ('{"event":"media","media":{"payload":"@@@"}}', "bad_payload"),
        ('{"event":"media","media":{"payload":""}}', "bad_payload"),
        ('{"event":"media","media":{"track":"outbound","payload":"AA=="}}', "other_track"),
        ('{"event":"media","media":{"payload":"AA==","chunk":"x1"}}', "bad_field"),
        ('{"event":"dtmf","dtmf":{"digit":"55"}}', "bad_field"),
        ('{"event":"dtmf","dtmf":{"digit":"x"}}', "bad_field"),
        ('{"event":"mark","mark":{}}', "missing_field"),
        ('{"event":"media"}', "missing_field"),
        ("x" * 70000, "frame_too_large"),
    ],
)
def test_malformed_messages_are_counted_rejections(frame: str | bytes, code: str) -> None:
    codec = started()
    [out] = codec.feed(frame)
    assert isinstance(out, Rejected) and out.code == code
    assert codec.rejections == {code: 1}


def test_before_start_and_wrong_codec() -> None:
    codec = CarrierCodec(TWILIO)
    assert codec.feed(media(b"\xff"))[0] == Rejected("not_started", "'media' before 'start'")
    wrong = json.loads(twilio_start())
    wrong["start"]["mediaFormat"]["encoding"] = "audio/l16"
    [out] = codec.feed(json.dumps(wrong))
    assert isinstance(out, Rejected) and out.code == "unsupported_codec"
    wrong["start"]["mediaFormat"] = {"encoding": "audio/x-mulaw", "sampleRate": 16000}
    assert codec.feed(json.dumps(wrong))[0].code == "unsupported_codec"  # type: ignore[union-attr]
    assert isinstance(codec.feed(twilio_start())[0], Start)
    assert codec.feed(twilio_start())[0].code == "already_started"  # type: ignore[union-attr]


def telnyx_start(encoding: str = "PCMA") -> str:
    return json.dumps(
        {
            "event": "start",
            "sequence_number": "1",
            "stream_id": "S1",
            "start": {
                "call_control_id": "v3:abc",
                "media_format": {"encoding": encoding, "sample_rate": 8000, "channels": 1},
            },
        }
    )


def test_telnyx_orders_by_sequence_number_and_counts_late_frames() -> None:
    codec = CarrierCodec(TELNYX)
    [start] = codec.feed(telnyx_start())
    assert isinstance(start, Start) and start.encoding == "alaw" and start.stream_id == "S1"
    frames = {n: media(bytes([n]) * 160, n, "sequence_number") for n in range(2, 7)}
    assert codec.feed(frames[3]) == []  # held: 2 is missing
    out = codec.feed(frames[2])
    assert [type(m) for m in out] == [Media, Media]
    assert codec.feed(frames[2])[0].code == "late_frame"  # type: ignore[union-attr]
    # A frame lost for good: after the window the gap is skipped.
    released = [
        m for n in range(5, 5 + 10) for m in codec.feed(media(b"\x01" * 160, n, "sequence_number"))
    ]
    assert len(released) >= 2
    assert codec.rejections == {"late_frame": 1}


def test_telnyx_custom_parameters_as_a_list_of_name_value() -> None:
    codec = CarrierCodec(TELNYX)
    start = json.loads(telnyx_start("PCMU"))
    start["start"]["custom_parameters"] = [{"name": "voice", "value": "en-gb"}]
    [out] = codec.feed(json.dumps(start))
    assert isinstance(out, Start) and out.parameters == {"voice": "en-gb"}
    start["start"]["custom_parameters"] = [{"name": "voice"}]
    assert CarrierCodec(TELNYX).feed(json.dumps(start))[0] == Rejected(
        "missing_field", "missing field 'value'"
    )


def test_telnyx_stop_releases_held_frames() -> None:
    codec = CarrierCodec(TELNYX)
    codec.feed(telnyx_start("PCMU"))
    assert codec.feed(media(b"\xff" * 160, 3, "sequence_number")) == []
    out = codec.feed(json.dumps({"event": "stop", "sequence_number": "4", "stop": {}}))
    assert [type(m) for m in out] == [Media, Stop]


def test_outbound_frames_name_the_stream_for_twilio_only() -> None:
    twilio = started()
    assert json.loads(twilio.encode_clear()) == {"event": "clear", "streamSid": "MZ1"}
    assert json.loads(twilio.encode_mark("b1")) == {
        "event": "mark",
        "streamSid": "MZ1",
        "mark": {"name": "b1"},
    }
    telnyx = CarrierCodec(TELNYX)
    telnyx.feed(telnyx_start("PCMU"))
    payload = telnyx.encode_audio(np.zeros(160, np.int16))
    assert len(payload) == 160
    assert (
        json.loads(telnyx.encode_media(payload))["media"]["payload"]
        == base64.b64encode(payload).decode()
    )


def test_marks_echoed_after_our_clear_are_dropped_not_heard() -> None:
    marks = MarkTracker()
    a, b, c = marks.place(1, 800), marks.place(1, 1600), marks.place(1, 2400)
    assert marks.echoed(a) == Played(1, 800)
    assert marks.clear(at=5.0) == 2  # b and c were still queued at the carrier
    d = marks.place(2, 400)
    assert marks.echoed(c) == Dropped(1, 2400)  # the carrier echoes on clear, any order
    assert marks.echoed(b) == Dropped(1, 1600)
    assert marks.echoed(d) == Played(2, 400)
    assert marks.echoed(a) == Unknown(a)  # twice
    assert marks.echoed("forged") == Unknown("forged")
    assert marks.played(1) == 800 and marks.played(2) == 400
    s = marks.stats
    assert (s.placed, s.played, s.dropped, s.unknown, s.clears) == (4, 2, 2, 2, 1)


def test_pending_marks_are_bounded() -> None:
    marks = MarkTracker(max_pending=3)
    names = [marks.place(1, 160 * i) for i in range(5)]
    assert marks.pending == 3 and marks.stats.forgotten == 2
    assert isinstance(marks.echoed(names[0]), Unknown)
    assert marks.echoed(names[4]) == Played(1, 640)


def test_dtmf_entries_end_with_hash_gap_or_length() -> None:
    keys = DtmfCollector(gap_s=1.5, max_digits=4)
    assert keys.press("1", 0.0) is None and keys.press("2", 0.5) is None
    assert keys.due() == 2.0 and keys.expire(1.9) is None
    assert keys.expire(2.0) == "12" and keys.due() is None
    assert keys.press("9", 3.0) is None and keys.press("#", 3.1) == "9"
    assert keys.press("#", 4.0) == "#"
    assert [keys.press(d, 5.0) for d in "1234"] == [None, None, None, "1234"]


def test_call_options_from_custom_parameters() -> None:
    assert call_options({"voice": "en-us", "rate_wpm": "160", "policy": "confirm", "x": "y"}) == {
        "voice": "en-us",
        "rate_wpm": 160,
        "policy": "confirm",
    }
    for bad in ({"rate_wpm": "fast"}, {"policy": "never"}, {"voice": "a\x00b"}):
        with pytest.raises(CallRefused) as refused:
            call_options(bad)
        assert refused.value.code == "bad_field"


def test_twilio_signature_is_hmac_sha1_of_the_url() -> None:
    # HMAC-SHA1 over the URL alone (an upgrade is a GET), base64: computed independently.
    import hashlib
    import hmac

    url = public_url("wss://voice.example.com/", "ignored", "/twilio")
    assert url == "wss://voice.example.com/twilio"
    expected = base64.b64encode(hmac.new(b"tok", url.encode(), hashlib.sha1).digest()).decode()
    assert twilio_signature("tok", url) == expected
    assert twilio_signature_ok("tok", url, expected)
    assert not twilio_signature_ok("tok", url + "?x=1", expected)
    assert not twilio_signature_ok("other", url, expected)
    assert not twilio_signature_ok("tok", url, None)
    assert public_url(None, "h:1", "/telnyx", "token=a") == "wss://h:1/telnyx?token=a"


# -- property tests: nothing a carrier sends escapes the codec as an exception ---------------

_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
_events = st.sampled_from(["connected", "start", "media", "dtmf", "mark", "stop", "clear", "x"])
_shaped = st.fixed_dictionaries(
    {"event": _events},
    optional={
        "sequenceNumber": _scalars,
        "sequence_number": _scalars,
        "streamSid": _scalars,
        "stream_id": _scalars,
        "start": _json,
        "media": st.fixed_dictionaries(
            {}, optional={"payload": st.text(max_size=40), "track": _scalars, "chunk": _scalars}
        ),
        "mark": _json,
        "dtmf": _json,
    },
)


@settings(max_examples=300, deadline=None)
@given(
    carrier=st.sampled_from([TWILIO, TELNYX]),
    frames=st.lists(
        st.text(max_size=60)
        | st.binary(max_size=40)
        | _json.map(json.dumps)
        | _shaped.map(json.dumps),
        max_size=12,
    ),
)
def test_any_frames_give_typed_messages_or_counted_rejections(
    carrier: object, frames: list[str | bytes]
) -> None:
    codec = CarrierCodec(carrier)  # type: ignore[arg-type]
    codec.feed(telnyx_start("PCMU") if carrier is TELNYX else twilio_start())
    rejected = 0
    for frame in frames:
        for out in codec.feed(frame):
            assert isinstance(out, Connected | Start | Media | Dtmf | MarkEcho | Stop | Rejected)
            rejected += isinstance(out, Rejected)
            if isinstance(out, Media):
                assert 0 < len(out.pcm) <= 8000
    assert sum(codec.rejections.values()) == rejected


class _SilentCarrier:
    """A stream that opens and then sends nothing (or only garbage)."""

    def __init__(self, frames: list[str] | None = None) -> None:
        self.frames = list(frames or [])
        self.closed: int | None = None

    async def accept(self) -> None:
        pass

    async def receive(self) -> str | bytes:
        if self.frames:
            return self.frames.pop(0)
        await trio.sleep_forever()
        raise AssertionError

    async def send(self, data: str | bytes) -> None:
        pass

    async def close(self, code: int, reason: str = "") -> None:
        self.closed = code


def _never_called(options: object) -> Engines:
    raise AssertionError("no session may start")


async def test_a_stream_without_start_is_closed_after_the_handshake_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = TelephonyServer(_never_called)
    ws = _SilentCarrier(["{bad", '{"event":"connected"}'])
    began = trio.current_time()
    await server.handle(ws, TWILIO, authorized=True)
    assert trio.current_time() - began == pytest.approx(server.limits.handshake_timeout)
    assert ws.closed == 1008
    assert server.stats.refused == {"handshake_timeout": 1}
    assert server.stats.rejections == {"bad_json": 1}


async def test_an_unsupported_codec_refuses_the_call_at_once() -> None:
    server = TelephonyServer(_never_called)
    start = json.loads(twilio_start())
    start["start"]["mediaFormat"]["encoding"] = "audio/opus"
    ws = _SilentCarrier([json.dumps(start)])
    await server.handle(ws, TWILIO, authorized=True)
    assert ws.closed == 1008 and server.stats.refused == {"unsupported_codec": 1}


async def test_a_carrier_that_stops_reading_is_given_up_on(
    autojump_clock: trio.testing.MockClock,
) -> None:
    from bargein.runtime.messages import OutFrame, WordMark
    from bargein.transports.telephony.transport import (
        CarrierStalled,
        TelephonyLimits,
        TelephonyTransport,
    )

    transport = TelephonyTransport(started(), MarkTracker(), TelephonyLimits(stall_timeout=5.0))
    reports: list[tuple[int, int]] = []

    def report(turn: int, samples: int) -> bool:
        reports.append((turn, samples))
        return True

    transport.report = report
    word = WordMark("hi", 0, 100)
    await transport.send_audio(OutFrame(1, np.zeros(160, np.int16), 0, (word,)))
    assert reports == [(1, 0)]  # nothing of the turn counts as heard before an echo
    assert transport.marks.pending == 1  # the frame carries a word end: a mark follows it

    async def stuck(frame: str) -> None:
        await trio.sleep_forever()

    began = trio.current_time()
    with pytest.raises(CarrierStalled):
        await transport.run_writer(stuck)
    assert trio.current_time() - began == pytest.approx(5.0)
