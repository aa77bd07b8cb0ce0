"""`bench load`'s client phases (docs/capacity.md): lock-step clients all talk at once,
staggered ones at independent phases of the utterance cycle; and how many talk at once."""

from __future__ import annotations

import pytest

from bargein.benchmarks.load_client import (
    SPEECH_END_S,
    SPEECH_START_S,
    start_delays,
    talking_at_once,
)

CYCLE = 5.3  # goforward.raw (2.8 s) + the default 2.5 s gap


def _speech_ends(delays: list[float], utterances: int = 3) -> list[float]:
    return [d + k * CYCLE + SPEECH_END_S for d in delays for k in range(utterances)]


def test_lockstep_clients_start_within_a_second_and_all_talk_at_once() -> None:
    delays = start_delays(16, "lockstep", CYCLE, seed=16)
    assert len(delays) == 16
    assert all(0 <= d < 1.0 for d in delays)
    most, _ = talking_at_once(_speech_ends(delays))
    assert most == 16


def test_staggered_clients_spread_over_the_whole_cycle() -> None:
    delays = start_delays(200, "stagger", CYCLE, seed=200)
    assert all(0 <= d < CYCLE for d in delays)
    fifths = {int(d / CYCLE * 5) for d in delays}
    assert fifths == {0, 1, 2, 3, 4}  # every part of the cycle has clients starting in it


def test_staggered_clients_do_not_all_talk_at_once() -> None:
    most, mean = talking_at_once(_speech_ends(start_delays(16, "stagger", CYCLE, seed=16)))
    voiced_share = (SPEECH_END_S - SPEECH_START_S) / CYCLE
    assert most < 16
    assert 16 * voiced_share * 0.5 < mean < most  # about the voiced share of 16, not all 16


def test_phases_are_repeatable_per_seed() -> None:
    assert start_delays(8, "stagger", CYCLE, 8) == start_delays(8, "stagger", CYCLE, 8)
    assert start_delays(8, "stagger", CYCLE, 8) != start_delays(8, "stagger", CYCLE, 9)


def test_bad_phase_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="start"):
        start_delays(4, "together", CYCLE, 1)
    with pytest.raises(ValueError):
        start_delays(4, "stagger", 0.0, 1)
    with pytest.raises(ValueError):
        start_delays(-1, "stagger", CYCLE, 1)


def test_talking_at_once_counts_overlapping_voiced_stretches() -> None:
    voiced = SPEECH_END_S - SPEECH_START_S  # 1.92 s before each speech end
    assert talking_at_once([]) == (0, 0.0)
    assert talking_at_once([5.0, 5.0]) == (2, 2.0)
    assert talking_at_once([5.0, 10.0]) == (1, 1.0)
    assert talking_at_once([5.0, 5.0 + voiced])[0] == 1  # touching is not overlapping
    most, mean = talking_at_once([5.0, 6.0])  # 0.92 s of the 2.92 s talked overlap
    assert most == 2
    assert mean == pytest.approx((voiced * 2) / (voiced + 1.0))
