"""PCM16 <-> float32, G.711 mu-law / A-law, and levels.

G.711 follows the ITU-T G.191 reference software (``g711.c``: ``ulaw_compress`` and
``alaw_compress``): the 16-bit sample is reduced to 14 (mu-law) or 13 (A-law) bits, negative
values through their one's complement, so a quantizer cell and its mirror image are the same
size. Encoding is a 64 Ki-entry table lookup, decoding a 256-entry one, both built once at import.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from bargein.dsp import _kernels

_SCALE = np.float32(1.0 / 32768.0)
_INT16 = np.dtype(np.int16)
_FULL_SCALE_SQUARED = 32768.0 * 32768.0
_sum_squares = _kernels.sum_squares_i16
SILENCE_DBFS = -120.0


def _int16(x: NDArray[np.int16], what: str) -> NDArray[np.int16]:
    a = np.asarray(x)
    if a.dtype != np.int16:
        raise TypeError(f"{what} takes int16 samples, got {a.dtype}")
    return a


def pcm16_to_float32(x: NDArray[np.int16]) -> NDArray[np.float32]:
    """int16 -> float32 in [-1, 1): divide by 32768 (exact in float32)."""
    return _int16(x, "pcm16_to_float32").astype(np.float32) * _SCALE


def float32_to_pcm16(x: NDArray[np.float32]) -> NDArray[np.int16]:
    """float -> int16: scale by 32768, round half to even, clip to the int16 range."""
    y: NDArray[np.float32] = np.rint(np.asarray(x, dtype=np.float32) * np.float32(32768.0))
    out: NDArray[np.int16] = np.clip(y, -32768.0, 32767.0).astype(np.int16)
    return out


def pcm16_from_bytes(b: bytes) -> NDArray[np.int16]:
    """Little-endian PCM16 bytes -> a writeable native int16 array."""
    if len(b) % 2:
        raise ValueError(f"PCM16 needs an even number of bytes, got {len(b)}")
    return np.frombuffer(b, dtype="<i2").astype(np.int16)


def pcm16_to_bytes(x: NDArray[np.int16]) -> bytes:
    """int16 -> little-endian PCM16 bytes."""
    return _int16(x, "pcm16_to_bytes").astype("<i2").tobytes()


# --- G.711 -----------------------------------------------------------------------------------


def _ulaw_compress_all() -> NDArray[np.uint8]:
    """ITU-T G.191 ulaw_compress for every int16 value, indexed by the value as uint16."""
    lin = np.arange(-32768, 32768, dtype=np.int64)
    absno = np.where(lin < 0, (~lin) >> 2, lin >> 2) + 33  # 14-bit magnitude plus bias
    absno = np.minimum(absno, 0x1FFF)
    i = absno >> 6
    segno = np.ones_like(absno)
    while np.any(i):  # segment = 1 + bit length of absno >> 6
        segno += i != 0
        i >>= 1
    high = 8 - segno
    low = 0xF - ((absno >> segno) & 0xF)
    code = (high << 4) | low
    code = np.where(lin >= 0, code | 0x80, code)
    table = np.zeros(65536, np.uint8)
    table[lin.astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _ulaw_expand_all() -> NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64)
    sign = np.where(code < 0x80, -1, 1)
    mant = ~code
    exponent = (mant >> 4) & 0x7
    segment = exponent + 1
    mant &= 0xF
    step = 4 << segment
    lin: NDArray[np.int64] = sign * ((0x80 << exponent) + step * mant + step // 2 - 4 * 33)
    return lin.astype(np.int16)


def _alaw_compress_all() -> NDArray[np.uint8]:
    lin = np.arange(-32768, 32768, dtype=np.int64)
    ix = np.where(lin < 0, (~lin) >> 4, lin >> 4)  # 12-bit magnitude
    big = ix > 15
    e = np.ones_like(ix)
    m = ix.copy()
    while True:  # normalize: shift the mantissa into 16..31, counting the exponent
        more = big & (m > 31)
        if not np.any(more):
            break
        m = np.where(more, m >> 1, m)
        e = np.where(more, e + 1, e)
    iexp = np.where(big, e, 0)
    ix = np.where(big, (m - 16) + (iexp << 4), ix)
    ix = np.where(lin >= 0, ix | 0x80, ix)
    code = ix ^ 0x55
    table = np.zeros(65536, np.uint8)
    table[lin.astype(np.int16).view(np.uint16)] = code.astype(np.uint8)
    return table


def _alaw_expand_all() -> NDArray[np.int16]:
    code = np.arange(256, dtype=np.int64)
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0xF
    mant = np.where(iexp > 0, mant + 16, mant)
    mant = (mant << 4) + 8
    mant = np.where(iexp > 1, mant << np.maximum(iexp - 1, 0), mant)
    return np.where(code > 127, mant, -mant).astype(np.int16)


_ULAW_ENC = _ulaw_compress_all()
_ULAW_DEC = _ulaw_expand_all()
_ALAW_ENC = _alaw_compress_all()
_ALAW_DEC = _alaw_expand_all()


def ulaw_encode(x: NDArray[np.int16]) -> NDArray[np.uint8]:
    """PCM16 -> G.711 mu-law bytes (as uint8; ``.tobytes()`` for the wire)."""
    return _ULAW_ENC[_int16(x, "ulaw_encode").view(np.uint16)]


def ulaw_decode(b: NDArray[np.uint8] | bytes) -> NDArray[np.int16]:
    """G.711 mu-law codes (uint8 array or bytes) -> PCM16."""
    return _ULAW_DEC[_codes(b)]


def alaw_encode(x: NDArray[np.int16]) -> NDArray[np.uint8]:
    """PCM16 -> G.711 A-law codes (even bits inverted, as transmitted)."""
    return _ALAW_ENC[_int16(x, "alaw_encode").view(np.uint16)]


def alaw_decode(b: NDArray[np.uint8] | bytes) -> NDArray[np.int16]:
    """G.711 A-law codes (uint8 array or bytes) -> PCM16."""
    return _ALAW_DEC[_codes(b)]


def _codes(b: NDArray[np.uint8] | bytes) -> NDArray[np.uint8]:
    if isinstance(b, bytes | bytearray | memoryview):
        return np.frombuffer(b, dtype=np.uint8)
    a = np.asarray(b)
    if a.dtype != np.uint8:
        raise TypeError(f"G.711 codes must be uint8 or bytes, got {a.dtype}")
    return a


# --- levels ----------------------------------------------------------------------------------


def rms_dbfs(x: NDArray[np.int16]) -> float:
    """RMS level relative to full scale (32768): a full-scale sine reads -3.01 dBFS.

    Silence and empty input read ``SILENCE_DBFS`` (-120), which is also the floor.
    """
    a = x if type(x) is np.ndarray else np.asarray(x)  # (per 20 ms frame: no needless calls)
    if a.dtype != _INT16:
        raise TypeError(f"rms_dbfs takes int16 samples, got {a.dtype}")
    n = a.size
    if n == 0:
        return SILENCE_DBFS
    flags = a.flags
    if a.ndim != 1 or not flags.c_contiguous or not flags.writeable:
        a = np.array(a.reshape(-1), dtype=np.int16)
    ms = _sum_squares(a) / n
    if ms <= 0.0:
        return SILENCE_DBFS
    return max(SILENCE_DBFS, 10.0 * math.log10(ms / _FULL_SCALE_SQUARED))
