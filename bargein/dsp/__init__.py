"""DSP hot path: streaming resampling, framing, PCM/G.711 conversion, levels, echo
cancellation, ducking.

numba kernels with plain-numpy references. Imports nothing of bargein's and no trio. Call
``warm_up()`` once at start-up so no caller's first frame pays numba's compile/load time.
"""

from bargein.dsp._design import FilterDesign, design
from bargein.dsp.duck import Ducker
from bargein.dsp.echo import EchoCanceller, EchoStats, warm_up_echo
from bargein.dsp.framing import Framer, frame_samples
from bargein.dsp.pcm import (
    SILENCE_DBFS,
    alaw_decode,
    alaw_encode,
    float32_to_pcm16,
    pcm16_from_bytes,
    pcm16_to_bytes,
    pcm16_to_float32,
    rms_dbfs,
    ulaw_decode,
    ulaw_encode,
)
from bargein.dsp.resample import Resampler, resample
from bargein.dsp.warm import COMMON_CONVERSIONS, warm_up

__all__ = [
    "COMMON_CONVERSIONS",
    "SILENCE_DBFS",
    "Ducker",
    "EchoCanceller",
    "EchoStats",
    "FilterDesign",
    "Framer",
    "Resampler",
    "alaw_decode",
    "alaw_encode",
    "design",
    "float32_to_pcm16",
    "frame_samples",
    "pcm16_from_bytes",
    "pcm16_to_bytes",
    "pcm16_to_float32",
    "resample",
    "rms_dbfs",
    "ulaw_decode",
    "ulaw_encode",
    "warm_up",
    "warm_up_echo",
]
