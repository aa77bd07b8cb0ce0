"""With the embedded engines (pocketsphinx hears residual echo as words), our own voice in a
reverberant room must neither pause nor cancel the reply, and the user interrupting over it must
still take the floor: `echo_room_interrupt` (80 ms, RT60 300 ms, its tail 13 dB over the direct
path) as `bench/embedded_echo.py` runs it, mid-reply and with the echo from the reply's first
sample (docs/dsp.md, "Spectral evidence"). Before the spectral evidence its echo cancelled the
reply in every run. Real pocketsphinx, espeak-ng and the local planner; the virtual clock."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from bargein.engines.embedded import local_planner as lp
from bargein.research.experiment import SCENARIO_DIR, run_one
from bargein.research.policies import resolve_policy
from bargein.research.real_engines import with_engines
from bargein.research.scenario import load_scenario


@pytest.fixture
def story_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """The planner tells its story on the first turn whatever pocketsphinx heard (else no reply
    may play over the echo and the run says nothing about echo)."""
    reply = lp.LocalPlanner.reply

    def story(self: lp.LocalPlanner, messages: Any) -> str:
        if not any(m.role == "assistant" for m in messages):
            return "\n\n".join(lp.STORY)
        return reply(self, messages)

    monkeypatch.setattr(lp.LocalPlanner, "reply", story)


@pytest.mark.usefixtures("audio_dir", "story_first")
@pytest.mark.parametrize("echo_at", [None, 0.0])
def test_a_reverberant_echo_neither_pauses_nor_cancels_and_the_user_takes_over(
    echo_at: float | None,
) -> None:
    scenario = with_engines(load_scenario(SCENARIO_DIR / "echo_room_interrupt.toml"), "embedded")
    if echo_at is not None:
        scenario = dataclasses.replace(scenario, items=tuple(
            dataclasses.replace(it, at_s=echo_at) if it.source == "echo" else it
            for it in scenario.items
        ))  # fmt: skip
    _, rep = run_one(scenario, resolve_policy("aec_duck_classify"), None, plot=False)
    items = {it["label"]: it for it in rep["items"]}
    echo, stop = items["room_echo"], items["stop"]
    assert not echo["cancelled"], echo
    assert all(p < 150 for p in echo["pause_ms"]), echo
    assert stop["assistant_at_onset"] == "speaking", stop  # the reply was still playing
    assert stop["taken_over"] and stop["cancelled"], stop
