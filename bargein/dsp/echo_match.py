"""Waveform evidence of an echo: how well a short stretch of the microphone is a scaled, delayed
copy of what we played. Not the canceller (which needs seconds to learn); one normalized
cross-correlation, for the first frames of a mic onset (docs/dsp.md, "Waveform evidence").
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

PRE_EMPHASIS = 0.95  # whitens speech's low-frequency tilt, so vowels alone do not correlate


def waveform_match(mic: NDArray[np.floating], ref: NDArray[np.floating]) -> tuple[float, int]:
    """``(ncc, delay)``: the best normalized cross-correlation of ``mic`` (length L) with
    ``ref[j : j + L]`` over every ``j``, both pre-emphasized, and the delay of that match,
    ``len(ref) - L - j`` samples (``ref`` ends where ``mic`` ends: delay 0 is ``mic`` heard as
    it played). ``ncc`` is 1.0 for an exact scaled copy, 0.0 for silence on either side.

    For a single-path echo (a direct or nearly direct path) it is 0.9-1.0 from 40 ms of echo
    on; for a user's speech over our voice, 0.14-0.64 (espeak and the scripted voice against
    eight recordings, 138 onsets). A reverberant room spreads the echo over its tail and its
    correlation with any one delay falls to 0.25-0.4: there this is no evidence either way.
    """
    m = np.asarray(mic, np.float64)
    r = np.asarray(ref, np.float64)
    n, size = m.shape[0], r.shape[0]
    if n == 0 or size < n:
        raise ValueError(f"need 0 < len(mic) <= len(ref), got {n} and {size}")
    m = np.concatenate((m[:1], m[1:] - PRE_EMPHASIS * m[:-1]))
    r = np.concatenate((r[:1], r[1:] - PRE_EMPHASIS * r[:-1]))
    mm = float(m @ m)
    if mm <= 1e-18:
        return 0.0, 0
    # c[j] = sum_i m[i] r[i + j]: circular of length `size` has no wrap for j <= size - n.
    c = np.fft.irfft(np.conj(np.fft.rfft(m, size)) * np.fft.rfft(r, size), size)[: size - n + 1]
    cs = np.concatenate(([0.0], np.cumsum(r * r)))
    rr = cs[n:] - cs[: size - n + 1]
    v = c / np.sqrt(np.maximum(rr, 1e-18) * mm)
    v[rr <= 1e-18 * n] = 0.0  # nothing played there: no likeness
    j = int(np.argmax(v))
    return float(v[j]), size - n - j
