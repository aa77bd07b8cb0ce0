"""An echo that appears while our voice is already playing (a speakerphone switched on, a mic
unmuted mid-reply; in `research compare` with the embedded engines, whose reply starts 1.4 s
before the scenarios' echo windows do): the stage should find it before its first onset can
reach the VAD, i.e. within the first overlap's probe, not after the 1 s envelope window has
filled with it (docs/dsp.md, "Echo that starts after the reply").

The envelope evidence (the mic's last 1 s against ours) finds such an echo only ~0.5-1 s later
(29 frames reached the VAD before the waveform evidence). Now the first frames of a mic onset
over our voice are held while their waveform is compared with what played (docs/dsp.md,
"Waveform evidence"); a user's onset does not match (tests/test_echo_onset_match.py)."""

from __future__ import annotations

import numpy as np
import pytest

from bargein.actors import echo_path
from bargein.actors.echo_reference import CaptureClock, PlaybackReference
from bargein.dsp import rms_dbfs
from bargein.runtime.messages import AudioFrame


def _syllables(n: int, seed: int) -> np.ndarray:
    """Noise in syllables of 80-300 ms at random levels, with 0-120 ms gaps (an envelope as
    uneven as espeak's)."""
    rng = np.random.default_rng(seed)
    env = np.zeros(n)
    at = 0
    while at < n:
        d = int(rng.integers(1280, 4800))
        env[at : at + d] = rng.uniform(0.2, 1.0) * np.hanning(len(env[at : at + d]))
        at += d + int(rng.integers(0, 1920))
    return (rng.standard_normal(n) * 8000 * env).astype(np.int16)


@pytest.mark.parametrize("seed", [3, 5, 6])
def test_an_echo_appearing_mid_reply_is_gated_from_its_first_frame(seed: int) -> None:
    ref = PlaybackReference(16000, origin=0.0)
    clock = CaptureClock(16000)
    clock.arrived(0, 0.0)
    st = echo_path.EchoStage(ref, clock)
    n = 16000 * 4
    far = _syllables(n, seed=seed)
    lag, start = 960, 16000 * 3 // 2  # 60 ms; the echo appears 1.5 s into our voice
    mic = np.zeros(n, np.int16)
    mic[start:] = far[start - lag : n - lag] // 2
    passed = 0  # echo frames the VAD was handed as voice
    found_after = None
    for k in range(n // 320):
        ref.write(far[k * 320 : (k + 1) * 320], k * 0.02)
        pcm = mic[k * 320 : (k + 1) * 320]
        _, heard = st.process(AudioFrame(pcm, k * 320, 16000, rms_dbfs(pcm)))
        passed += heard.level_dbfs > -120.0 and k * 320 >= start
        if st.echo_found and found_after is None:
            found_after = k * 320 - start
    assert passed == 0, found_after
    assert found_after is not None and found_after <= 16000 * 0.2  # within the 200 ms probe
    assert st._echo_lag == 3
