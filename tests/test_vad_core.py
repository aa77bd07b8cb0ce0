"""VAD onset / hang-over hysteresis, fed per-frame flags by hand."""

from __future__ import annotations

import pytest

from bargein.actors.vad import VadConfig, VadCore
from bargein.runtime.messages import SpeechStarted, SpeechStopped, VoiceActivity

FRAME = 320  # 20 ms at 16 kHz


def run(core: VadCore, flags: str, level: float = -20.0) -> list[tuple[int, object]]:
    """Feed one frame per character ('1' speech, '0' silence); return (frame index, event)."""
    events = []
    for i, c in enumerate(flags):
        event = core.feed(c == "1", level, i * FRAME, FRAME)
        if isinstance(event, SpeechStarted | SpeechStopped):
            events.append((i, event))
    return events


def test_onset_after_start_window_is_backdated_to_first_speech_frame() -> None:
    core = VadCore(VadConfig(start_ms=100, stop_ms=200), 16000, FRAME)
    events = run(core, "000" + "11111")
    # The window [2..6] holds 4 of 5 voiced frames: enough at the default 0.75 ratio.
    assert events == [(6, SpeechStarted(onset=3 * 0.02, at=7 * 0.02))]


def test_flicker_tolerated_by_start_ratio() -> None:
    core = VadCore(VadConfig(start_ms=100, stop_ms=200, start_ratio=0.75), 16000, FRAME)
    assert [i for i, _ in run(core, "1101101111")] == [4]  # frames 0..4: 4 of 5 voiced


def test_short_blips_never_start() -> None:
    core = VadCore(VadConfig(start_ms=100, stop_ms=200), 16000, FRAME)
    assert run(core, "1100110011001100") == []


def test_hangover_stops_after_stop_ms_of_silence() -> None:
    core = VadCore(VadConfig(start_ms=60, stop_ms=100), 16000, FRAME)
    events = run(core, "111" + "1100" + "1" + "00000" + "000")
    assert isinstance(events[0][1], SpeechStarted)
    i, stop = events[1]
    assert i == 12  # five silent frames after the last voiced one (frame 7)
    assert stop == SpeechStopped(offset=8 * 0.02, at=13 * 0.02)
    assert not core.speaking


def test_min_level_gates_quiet_frames() -> None:
    core = VadCore(VadConfig(start_ms=60, stop_ms=100, min_level_dbfs=-40), 16000, FRAME)
    assert run(core, "111111", level=-50.0) == []
    assert len(run(core, "111", level=-30.0)) == 1


def test_end_of_input_closes_open_utterance() -> None:
    core = VadCore(VadConfig(start_ms=60, stop_ms=400), 16000, FRAME)
    run(core, "11111")
    event = core.end_of_input(5 * FRAME)
    assert event == SpeechStopped(offset=0.1, at=0.1)
    assert core.end_of_input(6 * FRAME) is None


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        VadConfig(aggressiveness=4)
    with pytest.raises(ValueError):
        VadConfig(stop_ms=0)


def test_voice_pauses_inside_an_utterance_are_reported() -> None:
    core = VadCore(VadConfig(start_ms=60, stop_ms=200), 16000, FRAME)
    events = [core.feed(c == "1", -20.0, i * FRAME, FRAME) for i, c in enumerate("1110011000")]
    assert [e for e in events if isinstance(e, VoiceActivity)] == [
        VoiceActivity(False, 3 * 0.02),
        VoiceActivity(True, 5 * 0.02),
        VoiceActivity(False, 7 * 0.02),
    ]
