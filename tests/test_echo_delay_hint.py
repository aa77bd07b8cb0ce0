"""`EchoCanceller.hint_delay`: an echo found by its waveform (tests/test_echo_onset_match.py)
comes with its delay to the sample; the canceller's own estimator needs ~3 s of envelopes
before it moves its window past 128 ms. Started at the hinted delay it cancels within the
first second (docs/dsp.md, "Waveform evidence")."""

from __future__ import annotations

import numpy as np

from bargein.actors import echo_path
from bargein.actors.echo_reference import CaptureClock, PlaybackReference
from bargein.dsp import rms_dbfs
from bargein.dsp.echo import EchoCanceller
from bargein.dsp.echo_mix import echo_of, erle_db, room_response
from bargein.runtime.messages import AudioFrame
from bargein.testing.audio import load

RATE = 16000


def _erle_by_second(ec: EchoCanceller, mic: np.ndarray, far: np.ndarray) -> list[float]:
    out = np.concatenate(
        [ec.process(mic[i : i + 320], far[i : i + 320]) for i in range(0, len(mic), 320)]
    ).astype(np.float64)
    return [erle_db(mic[a : a + RATE], out[a : a + RATE]) for a in range(0, len(mic), RATE)]


def test_a_hinted_delay_beyond_the_first_window_is_cancelled_within_a_second(
    audio_dir: object,
) -> None:
    far = load("pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav")[: 3 * RATE]
    farf = far.astype(np.float64) / 32768
    mic = echo_of(farf, room_response(RATE, delay_ms=150, rt60_ms=150, length_ms=150))
    plain = _erle_by_second(EchoCanceller(RATE), mic, farf)
    hinted = EchoCanceller(RATE)
    hinted.hint_delay(150 * 16)
    erle = _erle_by_second(hinted, mic, farf)
    assert max(plain[:2]) < 3.0  # measured -0.7 / -1.4 dB: the window is still 0..128 ms
    assert erle[1] >= 12.0, erle  # measured 15.5 dB in the second second (7.7 in the first)
    assert hinted.delay_samples == 2400 // 64 * 64 - 256  # an eighth of the filter before it


def test_a_hint_is_ignored_with_a_fixed_delay_and_clipped_to_the_range() -> None:
    ec = EchoCanceller(RATE, delay_ms=20)
    ec.hint_delay(2400)
    assert ec.delay_samples == 320
    ec = EchoCanceller(RATE)
    ec.hint_delay(10**6)  # beyond max_delay_ms: the window goes as far as it can
    assert ec.delay_samples == 8000 // 64 * 64 - 256
    ec = EchoCanceller(RATE)
    ec.hint_delay(-5)
    assert ec.delay_samples == 0


def test_the_stage_hints_the_delay_it_matched() -> None:
    rng = np.random.default_rng(2)
    n = RATE * 2
    far = (rng.standard_normal(n) * 3000).astype(np.int16)
    lag = 250 * 16
    mic = np.zeros(n, np.int16)
    mic[RATE:] = far[RATE - lag : n - lag] // 2
    ref = PlaybackReference(RATE, origin=0.0)
    clock = CaptureClock(RATE)
    clock.arrived(0, 0.0)
    st = echo_path.EchoStage(ref, clock)
    for k in range(n // 320):
        ref.write(far[k * 320 : (k + 1) * 320], k * 0.02)
        pcm = mic[k * 320 : (k + 1) * 320]
        st.process(AudioFrame(pcm, k * 320, RATE, rms_dbfs(pcm)))
    assert st.matches == 1
    assert st.canceller.delay_samples == lag // 64 * 64 - 256
