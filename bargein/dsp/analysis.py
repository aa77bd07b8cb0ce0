"""Measurements of a resampler through its public streaming API, with pure tones (numpy only).

Used by the tests and the benchmark. Each tone goes through ``Resampler.process`` + ``flush``;
the steady-state part of the output is least-squares fitted with a sinusoid at the tone's
frequency. The fit gives gain and phase (hence group delay); what the fit leaves over is every
spurious product (aliases, images, numerical noise), reported relative to the tone's amplitude.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from bargein.dsp.resample import Resampler

_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class ToneResponse:
    freq_hz: float
    gain_db: float  # fitted output amplitude / input amplitude (-inf above the output Nyquist)
    spur_db: float  # residual RMS / input RMS (everything that is not the tone)
    delay_ms: float  # from the fitted phase (nan where the tone does not pass)


def tone_response(
    in_rate: int, out_rate: int, freq_hz: float, seconds: float = _SECONDS
) -> ToneResponse:
    r = Resampler(in_rate, out_rate)
    n_in = round(seconds * in_rate)
    t_in = np.arange(n_in) / in_rate
    x = np.cos(2 * np.pi * freq_hz * t_in).astype(np.float32) * np.float32(0.5)
    y = np.concatenate((r.process(x), r.flush())).astype(np.float64)
    # Skip the start-up and the tail transients: a generous two delays plus 2 ms each side.
    edge = math.ceil((2 * r.delay_ms + 2.0) * 1e-3 * out_rate)
    n_end = math.floor(n_in * out_rate / in_rate)  # where the input ended, on the output clock
    seg = y[edge : n_end - edge]
    t = (np.arange(seg.shape[0]) + edge) / out_rate
    amp_in = 0.5
    rms_in = amp_in / math.sqrt(2)
    if freq_hz < out_rate / 2:
        w = 2 * np.pi * freq_hz * t
        basis = np.stack((np.cos(w), np.sin(w)), axis=1)
        coef, *_ = np.linalg.lstsq(basis, seg, rcond=None)
        resid = seg - basis @ coef
        amp = float(math.hypot(coef[0], coef[1]))
        gain_db = 20 * math.log10(max(amp, 1e-300) / amp_in)
        # y ~ amp*cos(w*t - phi), phi = 2*pi*f*delay (mod 2*pi)
        phi = math.atan2(float(coef[1]), float(coef[0])) % (2 * math.pi)
        delay_ms = phi / (2 * math.pi * freq_hz) * 1e3 if freq_hz > 0 else math.nan
    else:
        resid = seg
        gain_db = -math.inf
        delay_ms = math.nan
    spur = float(np.sqrt(np.mean(resid**2))) if resid.size else 0.0
    spur_db = 20 * math.log10(max(spur, 1e-300) / rms_in)
    return ToneResponse(float(freq_hz), gain_db, spur_db, delay_ms)


def tone_grid(in_rate: int, out_rate: int, count: int = 60) -> NDArray[np.float64]:
    """Tones from 50 Hz to 98 % of the input Nyquist, skipping +-2 % around the output Nyquist
    (where a tone and its alias are too close to separate in a short fit)."""
    f = np.linspace(50.0, 0.98 * in_rate / 2, count)
    nyq_out = out_rate / 2
    keep = np.abs(f - nyq_out) > 0.02 * nyq_out
    return f[keep]


def stopband_attenuation_db(in_rate: int, out_rate: int, count: int = 60) -> float:
    """Worst case over a tone grid of spurious output (aliases + images), as positive dB."""
    worst = max(tone_response(in_rate, out_rate, float(f)).spur_db for f in tone_grid(
        in_rate, out_rate, count))
    return -worst


def measured_delay_ms(in_rate: int, out_rate: int, freq_hz: float = 200.0) -> float:
    """Group delay from a tone's phase lag (unambiguous while delay < 1/freq)."""
    return tone_response(in_rate, out_rate, freq_hz).delay_ms
