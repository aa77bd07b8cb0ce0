"""The Realtime endpoint's `turn_detection`: `semantic_vad` is the learned end of turn (the
`smart_turn` preset's VAD fields, shaped by eagerness), `server_vad` stays silence endpointing
(docs/realtime.md, "Turn detection"). Pure mapping, then a real session over the SDK."""

from __future__ import annotations

import pytest
import trio

from bargein.actors.end_of_turn import AskTurn
from bargein.actors.turn_model import SessionModel
from bargein.decide.smart_turn import TurnPrediction, unavailable_reason
from bargein.presets import PRESETS
from bargein.runtime.events import Event, EventType
from bargein.testing.realtime import TOKEN, RealtimeClient, ScriptedEngines, drive, speech
from bargein.testing.web import running
from bargein.transports.access import AccessConfig
from bargein.transports.app import DemoServer
from bargein.transports.realtime.config import (
    SEMANTIC_VAD_PRESET,
    RealtimeSettings,
    TurnDetection,
    apply_update,
)
from bargein.transports.realtime.server import realtime_session_config

HANG_GUARD = 120  # seconds; a guard against hangs, never a performance bound


def semantic(eagerness: str) -> TurnDetection:
    settings = apply_update(
        RealtimeSettings(),
        {"audio": {"input": {"turn_detection": {"type": "semantic_vad", "eagerness": eagerness}}}},
    )
    assert settings.turn_detection is not None
    return settings.turn_detection


def test_semantic_vad_is_the_smart_turn_presets_end_of_turn() -> None:
    learned = PRESETS[SEMANTIC_VAD_PRESET].vad
    assert learned["end_of_turn"] == "smart_turn"
    for eagerness in ("low", "medium", "auto", "high"):
        vad = semantic(eagerness).vad()
        assert vad.end_of_turn == "smart_turn", eagerness
        assert vad.turn_check_ms == learned["turn_check_ms"]
    # medium/auto are the preset itself (with its fallback silence); low waits longer and
    # needs a surer model, high ends sooner on a less sure one.
    medium, low, high = semantic("medium").vad(), semantic("low").vad(), semantic("high").vad()
    assert semantic("auto").vad() == medium
    assert medium.turn_max_ms == learned["turn_max_ms"]
    assert low.stop_ms > medium.stop_ms > high.stop_ms
    assert low.turn_max_ms > medium.turn_max_ms > high.turn_max_ms
    assert low.turn_threshold > medium.turn_threshold > high.turn_threshold
    # The session config the endpoint builds carries it.
    settings = RealtimeSettings(turn_detection=semantic("high"))
    assert realtime_session_config(settings, "s").vad == high


def test_server_vad_stays_silence_endpointing() -> None:
    vad = TurnDetection(type="server_vad", silence_duration_ms=800).vad()
    assert vad.end_of_turn == "silence" and vad.stop_ms == 800


@pytest.mark.skipif(unavailable_reason() is not None, reason=str(unavailable_reason()))
@pytest.mark.parametrize(("kind", "asked"), [("semantic_vad", True), ("server_vad", False)])
async def test_a_semantic_vad_session_asks_the_model_and_server_vad_does_not(
    kind: str, asked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    predictions: list[AskTurn] = []
    predict = SessionModel.predict

    async def counted(self: SessionModel, request: AskTurn) -> TurnPrediction:
        predictions.append(request)
        return await predict(self, request)

    monkeypatch.setattr(SessionModel, "predict", counted)
    engines = ScriptedEngines(["go forward ten meters"], ["Going forward now."])
    server = DemoServer(engines.factory, access=AccessConfig(token=TOKEN))
    stops: list[Event] = []
    server.hub.add_listener(
        lambda e: stops.append(e) if e.type is EventType.SPEECH_STOPPED else None
    )

    def scenario(c: RealtimeClient) -> None:
        c.wait_type("session.created")
        c.conn.session.update(
            session={"type": "realtime", "audio": {"input": {"turn_detection": {"type": kind}}}}
        )
        _, updated = c.wait_type("session.updated")
        assert updated["session"]["audio"]["input"]["turn_detection"]["type"] == kind
        c.stream(speech(), speed=2.0)
        c.wait_type("input_audio_buffer.speech_stopped")
        c.wait_type("response.done")

    with trio.fail_after(HANG_GUARD):
        async with running(server) as port:
            await drive(port, scenario)
    assert stops
    first = stops[0].data
    # Only semantic_vad asks the model. Its verdict may come after `stop_ms` of silence on a
    # loaded machine (the model runs on a thread, the speech at twice real time): then the
    # silence fallback ends the turn, by design, without a probability.
    assert bool(predictions) is asked, first
    if not asked:
        assert "turn_probability" not in first and first["end_of_turn"] == "silence", first
    elif "turn_probability" not in first:
        assert first["end_of_turn"] == "silence", first
