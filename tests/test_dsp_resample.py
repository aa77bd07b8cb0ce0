"""Resampler: chunking invariance, agreement with references, frequency response, delay, edges."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from bargein.dsp import COMMON_CONVERSIONS, Resampler, _kernels, design, resample, warm_up
from bargein.dsp.analysis import tone_grid, tone_response
from bargein.dsp.reference import resample_reference, streamed_length

CONVERSIONS = [*COMMON_CONVERSIONS, (16_000, 16_000), (32_000, 48_000), (48_000, 44_100)]


def _signal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal(n)).astype(np.float32)


def _chunked(r: Resampler, x: np.ndarray, sizes: list[int]) -> np.ndarray:
    parts, i = [], 0
    for size in sizes:
        parts.append(r.process(x[i : i + size]))
        i += size
    parts.append(r.process(x[i:]))
    parts.append(r.flush())
    return np.concatenate(parts)


@settings(max_examples=60, deadline=None)
@given(
    conv=st.sampled_from(CONVERSIONS),
    n=st.integers(0, 2500),
    sizes=st.lists(st.integers(0, 700), max_size=30),
    seed=st.integers(0, 2**16),
)
def test_any_chunking_is_bit_identical_to_one_call(
    conv: tuple[int, int], n: int, sizes: list[int], seed: int
) -> None:
    x = _signal(n, seed)
    whole = resample(x, *conv)
    chunked = _chunked(Resampler(*conv), x, sizes)
    assert chunked.dtype == np.float32
    assert np.array_equal(whole, chunked)


@pytest.mark.parametrize("conv", CONVERSIONS)
def test_output_count_is_deterministic_and_flush_completes_the_convolution(
    conv: tuple[int, int],
) -> None:
    r = Resampler(*conv)
    x = _signal(1001)
    total = 0
    for start in range(0, 1001, 77):
        total += r.process(x[start : start + 77]).shape[0]
        assert total == streamed_length(min(start + 77, 1001), *conv)
    tail = r.flush()
    d = design(*conv)
    full = 1001 if d.identity else math.ceil(((1001 - 1) * d.up + d.num_taps) / d.down)
    assert total + tail.shape[0] == full
    assert r.samples_in == 0 and r.flush().shape[0] == 0  # flush resets


@pytest.mark.parametrize("conv", CONVERSIONS)
def test_kernel_matches_numpy_reference_and_scipy_upfirdn(conv: tuple[int, int]) -> None:
    x = _signal(3000, seed=7)
    ours = resample(x, *conv)
    ref = resample_reference(x, *conv, float32_taps=True)
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)
    d = design(*conv)
    if not d.identity:
        # scipy's upfirdn is a third implementation of the same sum (float64 taps).
        up = signal.upfirdn(d.taps * d.up, x.astype(np.float64), d.up, d.down)
        np.testing.assert_allclose(ours, up, rtol=0, atol=2e-6)


@pytest.mark.parametrize(
    "conv", [(48_000, 16_000), (44_100, 16_000), (16_000, 24_000), (16_000, 44_100)]
)
def test_jitted_kernel_equals_the_same_code_run_as_plain_python(conv: tuple[int, int]) -> None:
    r = Resampler(*conv)
    py = _kernels.PLAIN[r._kernel]
    x = _signal(300, seed=3)
    jit_out = r.process(x)
    r2 = Resampler(*conv)
    out = np.empty_like(jit_out)
    py(r2._table, r2._buf, x, out, r2._state, r2._sched)
    np.testing.assert_allclose(jit_out, out, rtol=0, atol=1e-6)
    assert np.array_equal(r._state, r2._state)


@pytest.mark.parametrize("conv", CONVERSIONS)
def test_delay_budget_and_design(conv: tuple[int, int]) -> None:
    r = Resampler(*conv)
    assert 0.0 <= r.delay_ms <= 3.0
    d = r.design
    if not d.identity:
        assert d.stopband_hz == min(conv) / 2  # nothing that aliases/images is let through
        assert d.passband_hz >= 0.75 * d.stopband_hz


@pytest.mark.parametrize("conv", [c for c in CONVERSIONS if c[0] != c[1]])
def test_passband_flat_over_voice_band_and_matches_delayed_tone(conv: tuple[int, int]) -> None:
    in_rate, out_rate = conv
    d = design(*conv)
    for f in np.linspace(100.0, d.passband_hz, 9):
        t = tone_response(in_rate, out_rate, float(f))
        assert abs(t.gain_db) < 0.01, (f, t)
        assert t.spur_db < -80.0, (f, t)
    # Analytic expectation: output n is the input tone at time n/out_rate - delay.
    r = Resampler(*conv)
    f = 1000.0
    x = (0.5 * np.cos(2 * np.pi * f * np.arange(in_rate // 5) / in_rate)).astype(np.float32)
    y = r.process(x).astype(np.float64)
    n = np.arange(y.shape[0])
    expected = 0.5 * np.cos(2 * np.pi * f * (n / out_rate - r.delay_ms / 1e3))
    steady = slice(int(0.01 * out_rate), None)
    assert np.max(np.abs(y[steady] - expected[steady])) < 0.5 * 10 ** (-80 / 20)


@pytest.mark.parametrize("conv", [c for c in CONVERSIONS if c[0] != c[1]])
def test_stopband_attenuation_at_least_80_db(conv: tuple[int, int]) -> None:
    in_rate, out_rate = conv
    low = min(conv) / 2
    # A coarse sweep of the whole input band plus a dense one just past the stopband edge,
    # where a Kaiser design is weakest.
    tones = list(tone_grid(in_rate, out_rate, 40))
    top = 0.98 * in_rate / 2
    if low * 1.005 < top:
        tones += list(np.linspace(low * 1.005, min(low * 1.15, top), 12))
    worst = max(tone_response(in_rate, out_rate, float(f)).spur_db for f in tones)
    assert worst <= -80.0


@pytest.mark.parametrize("conv", [c for c in CONVERSIONS if c[0] != c[1]])
def test_group_delay_measured_is_the_designed_one_at_every_frequency(
    conv: tuple[int, int],
) -> None:
    r = Resampler(*conv)
    for f in (100.0, 250.0, 300.0):  # periods longer than the delay, so phase is unambiguous
        measured = tone_response(*conv, f).delay_ms
        assert measured == pytest.approx(r.delay_ms, abs=0.002)


@pytest.mark.parametrize("conv", [(48_000, 16_000), (8_000, 16_000), (44_100, 16_000)])
def test_impulse_peak_lands_at_the_group_delay(conv: tuple[int, int]) -> None:
    in_rate, out_rate = conv
    x = np.zeros(in_rate // 10, np.float32)
    at = in_rate // 50  # 20 ms
    x[at] = 1.0
    y = resample(x, *conv)
    # Cross-correlate with the band-limited impulse the design predicts: the lag is the delay.
    peak = int(np.argmax(y))
    expected = (at / in_rate + Resampler(*conv).delay_ms / 1e3) * out_rate
    assert abs(peak - expected) <= 0.5 + 1e-9


def test_empty_chunks_and_reset() -> None:
    r = Resampler(48_000, 16_000)
    assert r.process(np.zeros(0, np.float32)).shape == (0,)
    x = _signal(960)
    first = r.process(x)
    r.reset()
    assert np.array_equal(r.process(x), first)
    assert Resampler(16_000, 8_000).flush().shape == (0,)


@pytest.mark.parametrize(
    "rates",
    [(0, 16_000), (16_000, -1), (4_000, 16_000), (16_000, 400_000), (48_000, 44_101),
     (16_000.0, 8_000), (True, 16_000)],
)
def test_invalid_or_unsupported_rates_raise_value_error(rates: tuple[object, object]) -> None:
    with pytest.raises(ValueError):
        Resampler(*rates)  # type: ignore[arg-type]


def test_bad_sample_types() -> None:
    r = Resampler(48_000, 16_000)
    with pytest.raises(TypeError):
        r.process(np.zeros(10, np.int16))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        r.process(np.zeros((2, 10), np.float32))


def test_int16_path_rounds_and_clips() -> None:
    x = (_signal(4800, seed=5) * 32767 * 3).clip(-32768, 32767).astype(np.int16)
    a, b = Resampler(48_000, 16_000), Resampler(48_000, 16_000)
    got = a.process_int16(x)
    ref = b.process(x.astype(np.float32) / 32768)
    assert got.dtype == np.int16
    assert np.array_equal(got, np.clip(np.rint(ref * 32768), -32768, 32767).astype(np.int16))


def test_odd_input_layouts_give_same_output_and_never_compile_on_the_hot_path() -> None:
    warm_up()
    before = {id(k): len(k.signatures) for k in _kernels.DISPATCHERS}  # type: ignore[attr-defined]
    x = _signal(2000)
    ref = resample(x, 48_000, 16_000)
    readonly = x.copy()
    readonly.flags.writeable = False
    strided = np.repeat(x, 2)[::2]
    for variant in (readonly, strided, x.astype(np.float64)):
        assert np.array_equal(resample(variant, 48_000, 16_000), ref)
    for conv in CONVERSIONS:
        resample(x, *conv)
    after = {id(k): len(k.signatures) for k in _kernels.DISPATCHERS}  # type: ignore[attr-defined]
    assert after == before


def test_huge_chunk_is_split_invisibly() -> None:
    x = _signal(100_000, seed=11)
    r = Resampler(44_100, 16_000)
    assert np.array_equal(
        np.concatenate((r.process(x), r.flush())), _chunked(Resampler(44_100, 16_000), x, [960] * 5)
    )


@pytest.mark.parametrize(
    "conv",
    [(44_100, 16_000), (48_000, 16_000), (22_050, 48_000), (16_000, 44_100), (8_000, 16_000)],
)
def test_one_sample_chunks_match_one_call_for_both_kernels(conv: tuple[int, int]) -> None:
    # Every output then sits at a chunk boundary; an upsampling block is cut after each input.
    x = _signal(700, seed=13)
    assert np.array_equal(_chunked(Resampler(*conv), x, [1] * 700), resample(x, *conv))
    assert np.array_equal(_chunked(Resampler(*conv), x, [0, 2, 1, 3] * 100), resample(x, *conv))


@pytest.mark.parametrize("conv", [(44_100, 16_000), (16_000, 44_100), (48_000, 16_000)])
def test_kernel_follows_the_direction_and_tables_start_on_a_cache_line(
    conv: tuple[int, int],
) -> None:
    r = Resampler(*conv)
    assert r._kernel is (_kernels.resample_up if conv[1] > conv[0] else _kernels.resample_down)
    assert r._table.ctypes.data % 64 == 0
    assert Resampler(*conv)._table is r._table  # shared by every resampler of the pair
