"""`output_ducked` / `output_restored` on the wire: the session events map to `output.ducked` /
`output.restored` (docs/protocol.md) and round-trip through the codec; bad fields are refused."""

from __future__ import annotations

import json

import pytest

from bargein.runtime.events import Event, EventType
from bargein.transports.mapping import event_to_message
from bargein.transports.protocol import (
    ClientProtocol,
    OutputDucked,
    OutputRestored,
    RemoteProtocolError,
    ServerProtocol,
    SessionStart,
    SessionStarted,
)


def event(kind: EventType, **data: object) -> Event:
    return Event(kind, 4.25, "s1", 7, turn=2, data=data)


def test_events_map_to_their_messages() -> None:
    ducked = event_to_message(event(EventType.OUTPUT_DUCKED, onset=4.1, depth_db=-15.0))
    assert ducked == OutputDucked(2, -15.0, 4.25)
    restored = event_to_message(
        event(EventType.OUTPUT_RESTORED, ducked_at=4.2, text="mm hmm", ducked_ms=740.0)
    )
    assert restored == OutputRestored(2, "mm hmm", 740, 4.25)


def connected() -> tuple[ServerProtocol, ClientProtocol]:
    server, client = ServerProtocol(), ClientProtocol()
    server.receive(client.send(SessionStart(16000)))
    client.receive(server.send(SessionStarted("s1", 16000, 16000)))
    return server, client


def test_they_round_trip() -> None:
    server, client = connected()
    for message in (OutputDucked(2, -15.0, 4.25), OutputRestored(2, "mm hmm", 740, 5.0)):
        frame = server.send(message)
        assert isinstance(frame, str)
        obj = json.loads(frame)
        assert obj["type"] == message.TYPE and obj["v"] == 1
        assert client.receive(frame) == message
    assert json.loads(server.send(OutputDucked(2, -15.0, 4.25))) == {
        "type": "output.ducked", "v": 1, "turn": 2, "depth_db": -15.0, "t": 4.25
    }


@pytest.mark.parametrize("depth", [3.0, -61, "loud", True, None])
def test_a_bad_depth_is_refused(depth: object) -> None:
    _, client = connected()
    frame = json.dumps({"type": "output.ducked", "v": 1, "turn": 2, "depth_db": depth, "t": 1})
    with pytest.raises(RemoteProtocolError):
        client.receive(frame)
