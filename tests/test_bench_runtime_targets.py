"""`bargein bench runtime` names the issue-16 figures with their targets: the answering-at-50
figure is the 50-session answering sweep's, never the listening one's."""

from __future__ import annotations

from bargein.benchmarks.runtime import against_targets


def test_each_figure_comes_from_its_own_sweep_with_its_target() -> None:
    result = {
        "media": {"n50": {"cpu_percent_of_core_per_session": 0.26, "cpu_us_per_frame_fed": 52.0,
                          "saturated": False}},
        "media_listen_only": {"n50": {"cpu_percent_of_core_per_session": 0.19,
                                      "saturated": False}},
        "media_growth": {"from": 50, "to": 500, "ratio": 0.7},
        "pipecat_ratio": {"n10": {"ratio": 14.9, "pipecat_saturated": False}},
    }
    t = against_targets(result)
    answering = t["answering_50_sessions_cpu_percent_of_core_per_session"]
    assert (answering["value"], answering["met"], answering["target_max"]) == (0.26, False, 0.25)
    assert t["listening_50_sessions_cpu_percent_of_core_per_session"]["met"] is True
    assert t["answering_growth_50_to_500_per_session"]["met"] is True
    assert t["pipecat_ratio_listening_10_sessions"]["met"] is False
    assert against_targets({}) == {}  # nothing measured: nothing claimed
