"""Ducking ramp: reaches its depth, never jumps (max sample-to-sample gain step), is
sample-accurate and chunk-invariant, turns around mid-ramp smoothly, refuses bad commands."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bargein.dsp import duck as duck_module
from bargein.dsp.duck import Ducker

RATE = 16000


def _gains(d: Ducker, n: int, sizes: list[int]) -> np.ndarray:
    """Feed ones, so the output is the gain itself."""
    ones = np.ones(n, np.float32)
    parts, i, k = [], 0, 0
    while i < n:
        size = max(1, sizes[k % len(sizes)]) if sizes else n
        parts.append(d.process(ones[i : i + size]))
        i += size
        k += 1
    return np.concatenate(parts).astype(np.float64)


def test_duck_reaches_the_depth_after_the_ramp_and_restore_returns_to_unity() -> None:
    d = Ducker(RATE, depth_db=-15.0, ramp_ms=30.0)
    assert d.ramp_samples == 480
    d.duck(at=100)
    d.restore(at=2000)
    g = _gains(d, 4000, [320])
    assert np.all(g[:100] == 1.0)
    assert g[100] < 1.0  # the ramp starts on the commanded sample itself
    assert math.isclose(g[100 + 479], 10 ** (-15 / 20), rel_tol=1e-6)
    assert np.allclose(g[580:2000], 10 ** (-15 / 20))
    assert g[2000] > g[1999]
    assert np.all(g[2480:] == 1.0)
    assert d.settled and d.gain == 1.0


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 700), min_size=1, max_size=20),
    commands=st.lists(
        st.tuples(st.integers(0, 7000), st.sampled_from(["duck", "restore", "fade_out"])),
        max_size=8,
    ),
    ramp_ms=st.sampled_from([2.0, 10.0, 30.0, 80.0]),
)
def test_no_discontinuity_and_any_chunking_is_identical(
    sizes: list[int], commands: list[tuple[int, str]], ramp_ms: float
) -> None:
    commands = sorted(commands)
    outs = []
    for chunking in (sizes, []):
        d = Ducker(RATE, depth_db=-20.0, ramp_ms=ramp_ms)
        for at, name in commands:
            getattr(d, name)(at=at)
        outs.append(_gains(d, 8000, chunking))
    assert np.array_equal(outs[0], outs[1])
    g = outs[0]
    n = Ducker(RATE, ramp_ms=ramp_ms).ramp_samples
    # A ramp spans at most the full range 0..1; its steepest step is sin(pi/(2n)).
    bound = math.sin(math.pi / (2 * n)) + 1e-7
    assert float(np.max(np.abs(np.diff(np.concatenate(([1.0], g)))))) <= bound


def test_commands_now_between_chunks_equal_commands_at_that_sample() -> None:
    a, b = Ducker(RATE), Ducker(RATE)
    ones = np.ones(320, np.float32)
    b.duck(at=640)
    b.restore(at=960)
    out_a = []
    for k in range(6):
        if k == 2:
            a.duck()
        if k == 3:
            a.restore()
        out_a.append(a.process(ones))
    out_b = [b.process(ones) for _ in range(6)]
    assert np.array_equal(np.concatenate(out_a), np.concatenate(out_b))


def test_restore_mid_ramp_turns_around_from_the_current_gain() -> None:
    d = Ducker(RATE, depth_db=-30.0, ramp_ms=30.0)
    d.duck(at=0)
    d.restore(at=240)  # half way down
    g = _gains(d, 1000, [7])
    mid = g[239]
    assert 0.4 < mid < 0.7
    assert g[240] >= mid - math.sin(math.pi / 960)  # no jump back up or down
    assert g[239 + 480] == pytest.approx(1.0)
    assert np.max(np.abs(np.diff(g))) <= math.sin(math.pi / 960) + 1e-7


def test_fade_out_reaches_exact_silence_and_scales_the_signal() -> None:
    d = Ducker(RATE, ramp_ms=10.0)
    x = np.random.default_rng(0).uniform(-1, 1, 1000).astype(np.float32)
    d.fade_out(at=0)
    y = d.process(x)
    assert np.all(y[160:] == 0.0)
    assert np.all(np.abs(y) <= np.abs(x))


def test_int16_face_and_plain_kernel_agree() -> None:
    x = (np.random.default_rng(1).uniform(-1, 1, 2000) * 20000).astype(np.int16)
    d = Ducker(RATE)
    d.duck(at=10)
    y = d.process_int16(x)
    assert y.dtype == np.int16 and np.array_equal(y[:10], x[:10])
    xf = np.random.default_rng(2).uniform(-1, 1, 600).astype(np.float32)
    state = np.array([1.0, 0.1, 0.0, 480.0, 1.0])
    outs = []
    for kernel in (duck_module.apply_ramp, duck_module.apply_ramp_py):
        out = np.empty_like(xf)
        s = state.copy()
        kernel(xf, out, s)
        outs.append(out)
    assert np.array_equal(outs[0], outs[1])


def test_bad_settings_and_commands_are_refused() -> None:
    for kwargs in ({"depth_db": 3.0}, {"depth_db": float("nan")}, {"ramp_ms": 0.0},
                   {"ramp_ms": float("inf")}):
        with pytest.raises(ValueError):
            Ducker(RATE, **kwargs)
    with pytest.raises(ValueError):
        Ducker(0)
    d = Ducker(RATE)
    d.process(np.ones(100, np.float32))
    with pytest.raises(ValueError, match="already processed"):
        d.duck(at=50)
    d.duck(at=200)
    with pytest.raises(ValueError, match="sample order"):
        d.restore(at=150)
    with pytest.raises(ValueError, match="<= 0 dB"):
        d.set_gain_db(6.0)
    with pytest.raises(TypeError, match="float samples"):
        d.process(np.ones(10, np.int16))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="1-D"):
        d.process(np.ones((2, 2), np.float32))
    # Refusals changed nothing: the scheduled duck still happens at 200.
    g = d.process(np.ones(200, np.float32))
    assert g[99] == 1.0 and g[100] < 1.0
