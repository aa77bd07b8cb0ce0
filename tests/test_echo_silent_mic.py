"""The canceller's start-up when our voice first plays into a silent microphone.

Found with the embedded engines in `research compare` (docs/dsp.md, "Echo that starts after
the reply"): the reply started 1.4 s before the scenario's echo did, the mic delivered exact
zeros meanwhile, and those 1.4 s used up the canceller's fixed start-up step (nothing to learn
from a silent mic) and marked it converged (0 error of 0 mic). When the echo came, the
residual-based step (which needs an echo estimate to start from) stayed ~0, double talk was
flagged on every block, and the echo went through untouched: ERLE 0 dB for the whole reply.
"""

from __future__ import annotations

import numpy as np

from bargein.dsp.echo import EchoCanceller
from bargein.dsp.echo_mix import echo_of, erle_db, room_response
from bargein.testing.audio import load

RATE = 16000


def _far() -> np.ndarray:
    return load("pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav").astype(
        np.float64
    ) / 32768


def _run(ec: EchoCanceller, mic: np.ndarray, far: np.ndarray) -> np.ndarray:
    return np.concatenate(
        [ec.process(mic[i : i + 320], far[i : i + 320]) for i in range(0, len(mic), 320)]
    ).astype(np.float64)


def test_far_into_a_silent_mic_then_echo_still_converges(audio_dir: object) -> None:
    far = _far()[: 8 * RATE]
    h = room_response(RATE, delay_ms=40, rt60_ms=150, length_ms=150)
    mic = echo_of(far, h)
    quiet = round(1.5 * RATE)
    mic[:quiet] = 0.0  # the echo appears 1.5 s into our voice (the mic was muted, zeros)
    ec = EchoCanceller(RATE)
    out = _run(ec, mic, far)
    assert not ec.converged or erle_db(mic[quiet:], out[quiet:]) > 3.0
    # From 2 s after the echo appeared it is cancelled (measured 17.7 dB here; an echo there
    # from the start: 23.4 dB over the same samples; before the fix 0.0 dB).
    late = slice(quiet + 2 * RATE, None)
    assert erle_db(mic[late], out[late]) >= 15.0, ec.stats()


def test_a_silent_mic_does_not_make_the_canceller_converged(audio_dir: object) -> None:
    far = _far()[: 2 * RATE]
    ec = EchoCanceller(RATE)
    _run(ec, np.zeros_like(far), far)
    assert not ec.converged  # it removed nothing: there was nothing to remove
    assert not ec.adapted  # the start-up step is still ahead
