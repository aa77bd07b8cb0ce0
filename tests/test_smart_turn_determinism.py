"""Virtual-clock runs with the learned end of turn repeat exactly: each Smart Turn decision is
charged its fixed `VadConfig.turn_charge_ms`, not its measured time, so the same recording is
segmented the same way however long the model took on the machine (load, other jobs). Real
model, light engines, the `smart_turn` preset; a run's model is slowed on purpose, as machine load
would, and nothing the session decided may change."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors import turn_model
from bargein.decide.smart_turn import SmartTurn, TurnPrediction, unavailable_reason
from bargein.engines.embedded import default_engines
from bargein.filerun import converse
from bargein.presets import preset
from bargein.runtime.events import Event, EventType
from bargein.session import SessionConfig
from bargein.testing.audio import load, silence

REASON = unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"Smart Turn unavailable: {REASON}")

STRUCTURE = {
    EventType.SPEECH_STARTED,
    EventType.SPEECH_STOPPED,
    EventType.TRANSCRIPT_FINAL,
    EventType.TURN_STARTED,
    EventType.BARGE_IN,
    EventType.TURN_CANCELLED,
    EventType.TURN_COMPLETED,
}


class Slowed:
    """The real model, taking `delay_s` more wall time per decision."""

    def __init__(self, model: SmartTurn, delay_s: float) -> None:
        self.model = model
        self.delay_s = delay_s
        self.calls = 0

    def predict(self, audio: np.ndarray[Any, Any], rate: int = 16000) -> TurnPrediction:
        self.calls += 1
        time.sleep(self.delay_s)
        return self.model.predict(audio, rate)


def run(monkeypatch: pytest.MonkeyPatch, pcm: np.ndarray[Any, Any], delay_s: float) -> Any:
    slowed = Slowed(turn_model.shared_model(), delay_s)
    monkeypatch.setattr(turn_model, "_model", slowed)
    config = preset("smart_turn").apply(SessionConfig(compute="inline"))
    assert config.vad.end_of_turn == "smart_turn" and config.vad.turn_charge_ms is not None
    conv = trio.run(
        converse,
        pcm,
        16000,
        default_engines(),
        config,
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    assert slowed.calls >= 3
    return conv


def decided(events: list[Event]) -> list[tuple[Any, ...]]:
    """What the session decided, with the VAD's media stamps (exact by design)."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e.type not in STRUCTURE:
            continue
        keys = ("onset", "offset", "media_t", "end_of_turn", "turn_probability", "text", "reason")
        out.append((e.type, *(e.data.get(k) for k in keys)))
    return out


def test_virtual_clock_runs_with_smart_turn_repeat_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # vosk_test.wav: three digit strings; the second and third talk over the reply before.
    pcm = np.concatenate([load("vosk_test.wav"), silence(1500)])
    a = run(monkeypatch, pcm, 0.0)
    b = run(monkeypatch, pcm, 0.12)  # as if the machine were loaded: each decision 120 ms slower
    da, db = decided(list(a.events)), decided(list(b.events))
    stops = [d for d in da if d[0] == EventType.SPEECH_STOPPED]
    assert len(stops) == 3 and {d[4] for d in stops} & {"smart_turn", "max_wait"}
    assert da == db
    assert [(m.role, m.content) for m in a.messages] == [(m.role, m.content) for m in b.messages]
