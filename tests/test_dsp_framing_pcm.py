"""Framer conservation and bookkeeping; PCM16 conversions and levels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bargein.dsp import (
    Framer,
    float32_to_pcm16,
    frame_samples,
    pcm16_from_bytes,
    pcm16_to_bytes,
    pcm16_to_float32,
    rms_dbfs,
)


@settings(max_examples=80, deadline=None)
@given(
    frame=st.sampled_from([80, 160, 320, 441, 480, 960, 1]),
    sizes=st.lists(st.integers(0, 2000), max_size=25),
    pad=st.booleans(),
)
def test_framer_conserves_samples_for_any_chunking(frame: int, sizes: list[int], pad: bool) -> None:
    total = sum(sizes)
    x = (np.arange(total) % 65536 - 32768).astype(np.int16)
    f = Framer(frame)
    frames: list[np.ndarray] = []
    start = 0
    for size in sizes:
        out = f.push(x[start : start + size])
        start += size
        assert all(fr.shape == (frame,) and fr.dtype == np.int16 for fr in out)
        frames += out
        assert f.samples_in == start == f.samples_out + f.pending
        assert f.pending < frame
        assert f.frames_out == len(frames)
    tail = f.flush(pad=pad)
    assert (tail is None) == (total % frame == 0)
    if tail is not None:
        frames.append(tail)
        assert tail.shape[0] == (frame if pad else total % frame)
    got = np.concatenate(frames) if frames else np.zeros(0, np.int16)
    assert np.array_equal(got[:total], x)
    assert not got[total:].any()  # padding is zeros
    assert f.pending == 0 and f.samples_out == total == f.samples_in
    assert f.frames_out == math.ceil(total / frame)
    assert f.padded == (got.shape[0] - total)


def test_frames_do_not_alias_the_callers_chunk() -> None:
    f = Framer(4)
    x = np.arange(8, dtype=np.int16)
    frames = f.push(x)
    x[:] = 0
    assert frames[0].tolist() == [0, 1, 2, 3]


def test_framer_rejects_bad_input() -> None:
    for bad in (0, -160, 1.5):
        with pytest.raises(ValueError):
            Framer(bad)  # type: ignore[arg-type]
    f = Framer(160)
    with pytest.raises(TypeError):
        f.push(np.zeros(10, np.float32))  # type: ignore[arg-type]
    assert f.push(np.zeros(0, np.int16)) == []
    assert f.flush() is None


def test_frame_samples() -> None:
    assert frame_samples(16_000, 20) == 320
    assert frame_samples(8_000, 10) == 80
    assert frame_samples(44_100, 10) == 441
    with pytest.raises(ValueError):
        frame_samples(44_100, 15)  # 661.5 samples


def test_pcm16_float32_round_trip_is_exact() -> None:
    x = np.arange(-32768, 32768, dtype=np.int16)
    f = pcm16_to_float32(x)
    assert f.dtype == np.float32 and f.min() == -1.0 and f.max() < 1.0
    assert np.array_equal(float32_to_pcm16(f), x)
    assert float32_to_pcm16(np.array([1.5, -2.0, 0.49 / 32768], np.float32)).tolist() == [
        32767, -32768, 0]


def test_pcm16_bytes() -> None:
    assert pcm16_from_bytes(b"\x01\x00\xff\xff\x00\x80").tolist() == [1, -1, -32768]
    arr = pcm16_from_bytes(b"\x01\x00")
    arr[0] = 5  # writeable, not a view of the bytes
    assert pcm16_to_bytes(np.array([1, -1], np.int16)) == b"\x01\x00\xff\xff"
    assert pcm16_from_bytes(b"").shape == (0,)
    with pytest.raises(ValueError):
        pcm16_from_bytes(b"\x00\x01\x02")


def test_rms_dbfs() -> None:
    assert rms_dbfs(np.zeros(0, np.int16)) == -120.0
    assert rms_dbfs(np.zeros(320, np.int16)) == -120.0
    assert rms_dbfs(np.ones(320, np.int16)) == pytest.approx(-90.309, abs=0.001)  # 1 LSB
    one_click = np.zeros(10**7, np.int16)
    one_click[0] = 1
    assert rms_dbfs(one_click) == -120.0  # -160 dB clamps to the floor
    sine = np.rint(32767 * np.sin(2 * np.pi * 1000 * np.arange(16_000) / 16_000)).astype(np.int16)
    assert rms_dbfs(sine) == pytest.approx(-3.0103, abs=0.01)
    assert rms_dbfs(np.full(10, -32768, np.int16)) == pytest.approx(0.0, abs=1e-9)
    half = (sine // 2).astype(np.int16)
    assert rms_dbfs(half) == pytest.approx(-3.0103 - 6.0206, abs=0.01)
    assert rms_dbfs(sine[::2]) == pytest.approx(-3.0103, abs=0.01)  # non-contiguous input
