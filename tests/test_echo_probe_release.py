"""Frames held for the echo evidence (the first overlap's probe, an onset's hold) and then judged
not echo reach the VAD late but all of them, in order (`EchoStage.take_released`, fed by the
mic's front end before the frame just processed): a user's word shorter than the probe is no
longer swallowed (`interrupt_wait`'s 0.21 s "wait" under `aec_duck_classify`, docs/dsp.md)."""

from __future__ import annotations

import numpy as np

from bargein.actors import echo_path
from bargein.actors.echo_reference import CaptureClock, PlaybackReference
from bargein.dsp import rms_dbfs
from bargein.research.experiment import SCENARIO_DIR, run_one
from bargein.research.policies import resolve_policy
from bargein.research.scenario import load_scenario
from bargein.runtime.messages import AudioFrame


def _run(mic: np.ndarray, far: np.ndarray) -> tuple[list[tuple[int, float]], echo_path.EchoStage]:
    """What the VAD hears, as the mic's front end feeds it: (start, level) per frame."""
    ref = PlaybackReference(16000, origin=0.0)
    clock = CaptureClock(16000)
    clock.arrived(0, 0.0)
    st = echo_path.EchoStage(ref, clock)
    vad: list[tuple[int, float]] = []
    for k in range(len(mic) // 320):
        ref.write(far[k * 320 : (k + 1) * 320], k * 0.02)
        pcm = mic[k * 320 : (k + 1) * 320]
        _, heard = st.process(AudioFrame(pcm, k * 320, 16000, rms_dbfs(pcm)))
        vad += [(f.start, f.level_dbfs) for f in st.take_released()]
        vad.append((heard.start, heard.level_dbfs))
    return vad, st


def test_a_short_word_in_the_probe_reaches_the_vad_whole_and_in_order() -> None:
    rng = np.random.default_rng(4)
    n = 16000 * 2
    far = (rng.standard_normal(n) * 3000).astype(np.int16)
    mic = np.zeros(n, np.int16)
    word = slice(16000, 16000 + 3360)  # 0.21 s at the first overlap, no echo: the probe's
    mic[word] = (rng.standard_normal(3360) * 2000).astype(np.int16)
    vad, st = _run(mic, far)
    assert not st.echo_found
    voiced = [(s, lv) for s, lv in vad if lv > -120.0 and word.start <= s < word.stop]
    assert [s for s, _ in voiced] == list(range(word.start, word.stop, 320))  # all 11
    starts = [s for s, lv in vad if lv > -120.0]
    assert starts == sorted(starts)  # released before anything later
    assert st.stats().released_frames >= 10


def test_an_echo_found_in_the_probe_releases_nothing() -> None:
    rng = np.random.default_rng(5)
    n = 16000 * 2
    far = (rng.standard_normal(n) * 3000).astype(np.int16)
    mic = np.zeros(n, np.int16)
    mic[16000:] = far[16000 - 960 : n - 960] // 2  # the echo, 60 ms late
    vad, st = _run(mic, far)
    assert st.echo_found
    assert not [s for s, lv in vad if lv > -120.0 and s >= 16000]
    assert st.stats().released_frames == 0


def test_interrupt_wait_is_taken_over_with_the_echo_canceller(audio_dir: object) -> None:
    scenario = load_scenario(SCENARIO_DIR / "interrupt_wait.toml")
    _, rep = run_one(scenario, resolve_policy("aec_duck_classify"), None, plot=False)
    (wait,) = [it for it in rep["items"] if it["kind"] == "true_interruption"]
    assert wait["taken_over"], wait
