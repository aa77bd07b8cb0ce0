"""G.711 against independent scalar transcriptions of the ITU-T G.191 and Sun g711.c code."""

from __future__ import annotations

import numpy as np

from bargein.dsp import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL = np.arange(-32768, 32768, dtype=np.int64)
CODES = np.arange(256, dtype=np.uint8)


# --- ITU-T G.191 STL g711.c (ulaw_compress / alaw_compress / *_expand), one sample at a time ---


def itu_ulaw_compress(lin: int) -> int:
    absno = ((~lin) >> 2) + 33 if lin < 0 else (lin >> 2) + 33
    absno = min(absno, 0x1FFF)
    i = absno >> 6
    segno = 1
    while i != 0:
        segno += 1
        i >>= 1
    high = 0x8 - segno
    low = 0xF - ((absno >> segno) & 0xF)
    out = (high << 4) | low
    return out | 0x80 if lin >= 0 else out


def itu_ulaw_expand(code: int) -> int:
    sign = -1 if code < 0x80 else 1
    mant = ~code
    exponent = (mant >> 4) & 0x7
    segment = exponent + 1
    mant &= 0xF
    step = 4 << segment
    return sign * ((0x80 << exponent) + step * mant + step // 2 - 4 * 33)


def itu_alaw_compress(lin: int) -> int:
    ix = ((~lin) >> 4) if lin < 0 else (lin >> 4)
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix >>= 1
            iexp += 1
        ix -= 16
        ix += iexp << 4
    if lin >= 0:
        ix |= 0x80
    return ix ^ 0x55


def itu_alaw_expand(code: int) -> int:
    ix = (code ^ 0x55) & 0x7F
    iexp = ix >> 4
    mant = ix & 0xF
    if iexp > 0:
        mant += 16
    mant = (mant << 4) + 8
    if iexp > 1:
        mant <<= iexp - 1
    return mant if code > 127 else -mant


# --- Sun Microsystems g711.c (linear2ulaw / ulaw2linear / linear2alaw / alaw2linear) -----------

SEG_UEND = (0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF)
SEG_AEND = (0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF)


def _search(val: int, table: tuple[int, ...]) -> int:
    for i, end in enumerate(table):
        if val <= end:
            return i
    return len(table)


def sun_linear2ulaw(pcm: int) -> int:
    pcm >>= 2
    if pcm < 0:
        pcm, mask = -pcm, 0x7F
    else:
        mask = 0xFF
    pcm = min(pcm, 8159) + (0x84 >> 2)
    seg = _search(pcm, SEG_UEND)
    if seg >= 8:
        return 0x7F ^ mask
    return ((seg << 4) | ((pcm >> (seg + 1)) & 0xF)) ^ mask


def sun_ulaw2linear(u: int) -> int:
    u = ~u & 0xFF
    t = ((u & 0xF) << 3) + 0x84
    t <<= (u & 0x70) >> 4
    return 0x84 - t if u & 0x80 else t - 0x84


def sun_linear2alaw(pcm: int) -> int:
    pcm >>= 3
    if pcm >= 0:
        mask = 0xD5
    else:
        mask, pcm = 0x55, -pcm - 1
    seg = _search(pcm, SEG_AEND)
    if seg >= 8:
        return 0x7F ^ mask
    aval = seg << 4
    aval |= (pcm >> 1) & 0xF if seg < 2 else (pcm >> seg) & 0xF
    return aval ^ mask


def sun_alaw2linear(a: int) -> int:
    a ^= 0x55
    t = (a & 0xF) << 4
    seg = (a & 0x70) >> 4
    if seg == 0:
        t += 8
    elif seg == 1:
        t += 0x108
    else:
        t = (t + 0x108) << (seg - 1)
    return t if a & 0x80 else -t


# --- tests --------------------------------------------------------------------------------------


def test_ulaw_encode_matches_itu_reference_for_every_int16() -> None:
    ours = ulaw_encode(ALL.astype(np.int16))
    assert ours.dtype == np.uint8
    assert ours.tolist() == [itu_ulaw_compress(int(v)) for v in ALL]


def test_ulaw_encode_agrees_with_sun_on_non_negative_input() -> None:
    # Sun's coder negates after the 2-bit shift, ITU takes the one's complement first; they agree
    # on x >= 0 and may differ by one step at cell edges below zero.
    ours = ulaw_encode(ALL.astype(np.int16)).tolist()
    differ = [int(v) for v, o in zip(ALL, ours, strict=True) if o != sun_linear2ulaw(int(v))]
    assert differ and all(v < 0 for v in differ)


def test_ulaw_decode_matches_both_references_for_all_codes() -> None:
    ours = ulaw_decode(CODES).tolist()
    assert ours == [itu_ulaw_expand(int(c)) for c in CODES]
    assert ours == [sun_ulaw2linear(int(c)) for c in CODES]


def test_alaw_matches_itu_and_sun_for_every_input_and_code() -> None:
    ours = alaw_encode(ALL.astype(np.int16)).tolist()
    assert ours == [itu_alaw_compress(int(v)) for v in ALL]
    assert ours == [sun_linear2alaw(int(v)) for v in ALL]
    dec = alaw_decode(CODES).tolist()
    assert dec == [itu_alaw_expand(int(c)) for c in CODES]
    assert dec == [sun_alaw2linear(int(c)) for c in CODES]


def test_known_code_points() -> None:
    x = np.array([0, -1, 32767, -32768, 8, -8], np.int16)
    assert ulaw_encode(x).tolist() == [0xFF, 0x7F, 0x80, 0x00, 0xFE, 0x7E]
    assert alaw_encode(x).tolist() == [0xD5, 0x55, 0xAA, 0x2A, 0xD5, 0x55]
    assert ulaw_decode(np.array([0x80, 0x00, 0xFF, 0x7F], np.uint8)).tolist() == [
        32124, -32124, 0, 0]
    assert alaw_decode(np.array([0xAA, 0x2A, 0xD5, 0x55], np.uint8)).tolist() == [
        32256, -32256, 8, -8]


def test_round_trips() -> None:
    # Every code decodes to a value that encodes back to it (mu-law's two zeros collapse to 0xFF).
    u = ulaw_encode(ulaw_decode(CODES))
    assert all(c == d or (c == 0x7F and d == 0xFF) for c, d in zip(CODES, u, strict=True))
    assert np.array_equal(alaw_encode(alaw_decode(CODES)), CODES)
    # Quantization error stays inside half a step of the segment.
    x = ALL.astype(np.int16)
    err = np.abs(ulaw_decode(ulaw_encode(x)).astype(np.int64) - ALL)
    assert err.max() <= 1024
    assert ulaw_decode(ulaw_encode(x)).dtype == np.int16


def test_decode_accepts_bytes() -> None:
    wire = bytes([0xFF, 0x80, 0x00])
    assert ulaw_decode(wire).tolist() == [0, 32124, -32124]
    assert alaw_decode(bytes([0xD5])).tolist() == [8]
