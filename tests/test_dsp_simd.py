"""The explicit vector helpers: compiled and plain meanings agree, lane for lane."""

from __future__ import annotations

import numba
import numpy as np
from numpy.typing import NDArray

from bargein.dsp._simd import LANES, vadd, vfma, vload, vstore, vsum, vzero


def _mix_py(a: NDArray[np.float32], b: NDArray[np.float32], out: NDArray[np.float32]) -> float:
    acc = vzero()
    for k in range(0, a.shape[0] - LANES + 1, LANES):
        acc = vfma(acc, vload(a, k), vload(b, k))  # vector * vector
        acc = vfma(acc, vload(a, k + 1), b[k])  # vector * broadcast scalar, unaligned load
    vstore(out, 3, acc)
    return vsum(vadd(acc, acc))


_mix = numba.njit(_mix_py)


def test_compiled_helpers_match_their_plain_meaning() -> None:
    rng = np.random.default_rng(5)
    a = rng.standard_normal(97).astype(np.float32)
    b = rng.standard_normal(97).astype(np.float32)
    out_jit = np.zeros(24, np.float32)
    out_py = np.zeros(24, np.float32)
    s_jit = _mix(a, b, out_jit)
    s_py = _mix_py(a, b, out_py)
    # Only rounding differs: fused multiply-add compiled, two roundings in numpy.
    np.testing.assert_allclose(out_jit, out_py, rtol=0, atol=1e-5)
    assert out_jit[:3].tolist() == [0.0] * 3 and out_jit[3 + LANES :].tolist() == [0.0] * 5
    assert abs(s_jit - s_py) < 1e-4


def test_lane_sum_is_the_same_pairwise_tree_compiled_and_plain() -> None:
    v = np.zeros(LANES, np.float32)
    v[0], v[1], v[3] = 2.0**24, 1.0, 1.0
    # The tree adds lanes 1 and 3 together before lane 0: 2^24 + 2, exact in float32. Left to
    # right, each 1 alone would round away against 2^24.
    assert vsum(v) == 2.0**24 + 2
    assert numba.njit(lambda x: vsum(vload(x, 0)))(v) == 2.0**24 + 2
    rng = np.random.default_rng(9)
    w = rng.standard_normal(LANES).astype(np.float32)
    assert numba.njit(lambda x: vsum(vload(x, 0)))(w) == vsum(w)
