"""`bargein.research.voices`: the voice measurement docs/research.md quotes ("Addressed forms,
voices and detection") — F0 of a known tone, frame levels, and one starter scenario's rows."""

from __future__ import annotations

import numpy as np
import pytest

from bargein.research.experiment import resolve_scenarios
from bargein.research.voices import frame_levels, median_f0, rows


def _tone(f0: float, seconds: float = 1.0, amp: float = 0.3) -> np.ndarray:
    t = np.arange(int(16000 * seconds)) / 16000
    x = sum(amp / k * np.sin(2 * np.pi * f0 * k * t) for k in (1, 2, 3))
    return np.round(x * 32767).astype(np.int16)


@pytest.mark.parametrize("f0", [100.0, 150.0, 220.0])
def test_median_f0_of_a_harmonic_tone(f0: float) -> None:
    got = median_f0(_tone(f0))
    assert got is not None and abs(got - f0) / f0 < 0.015


def test_silence_has_no_f0_and_levels_are_dbfs() -> None:
    assert median_f0(np.zeros(16000, np.int16)) is None
    sine = np.round(32767 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.int16)
    assert frame_levels(sine) == pytest.approx(np.full(50, -3.01), abs=0.1)


def test_same_voice_rows() -> None:
    (r,) = rows(resolve_scenarios(["same_voice_a"]))
    assert r["item"] == "a_right_i_was" and r["same_recording"] is True
    assert isinstance(r["f0_ratio"], float) and 0.8 < r["f0_ratio"] < 1.25
    (s,) = [x for x in rows(resolve_scenarios(["side_talk"])) if x["item"] == "horizon"]
    assert s["same_recording"] is False and s["kind"] == "side_talk"
