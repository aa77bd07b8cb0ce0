"""DSP benchmark, resampling section: our streaming resampler vs soxr (HQ, streaming) vs
scipy.resample_poly on 20 ms chunks, and the cold-start cost of a fresh process (empty vs warm
numba cache). soxr and scipy are test extras, imported here only. Run by `bargein bench dsp`
(dsp.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bargein.benchmarks.common import time_per_call_us
from bargein.dsp import Resampler
from bargein.dsp.analysis import measured_delay_ms, stopband_attenuation_db

CHUNK_MS = 20


def _soxr_latency_ms(in_rate: int, out_rate: int) -> float:
    """How much audio soxr's stream holds back, fed 20 ms chunks (1 s in steady state).

    soxr compensates its filter delay in the output's timing but withholds that much output
    until more input arrives; the shortfall of samples is the latency a live stream sees.
    """
    import soxr

    s = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
    n = in_rate * CHUNK_MS // 1000
    chunks = 50
    produced = sum(
        int(s.resample_chunk(np.zeros(n, np.float32)).shape[0]) for _ in range(chunks)
    )
    expected = chunks * n * out_rate / in_rate
    return (expected - produced) / out_rate * 1e3


def bench_conversion(
    in_rate: int, out_rate: int, calls: int, repeats: int, atten_tones: int
) -> dict[str, Any]:
    import soxr
    from scipy.signal import resample_poly

    n = in_rate * CHUNK_MS // 1000
    rng = np.random.default_rng(1)
    chunk: NDArray[np.float32] = (0.1 * rng.standard_normal(n)).astype(np.float32)
    ours = Resampler(in_rate, out_rate)
    stream = soxr.ResampleStream(in_rate, out_rate, 1, dtype="float32", quality="HQ")
    g = math.gcd(in_rate, out_rate)
    up, down = out_rate // g, in_rate // g
    pcm = (chunk * 32767).astype(np.int16)
    ours16 = Resampler(in_rate, out_rate)
    best = time_per_call_us(
        {
            "ours": lambda: ours.process(chunk),
            "soxr": lambda: stream.resample_chunk(chunk),
            "ours_int16": lambda: ours16.process_int16(pcm),
        },
        calls,
        repeats,
    )
    (ours_us, ours_best), (soxr_us, soxr_best) = best["ours"], best["soxr"]
    ours_i16_us = best["ours_int16"][0]
    scipy_us = time_per_call_us(
        {"scipy": lambda: resample_poly(chunk, up, down)}, max(calls // 20, 20), repeats
    )["scipy"][0]
    atten = stopband_attenuation_db(in_rate, out_rate, atten_tones) if atten_tones else math.nan
    return {
        "conversion": f"{in_rate}->{out_rate}",
        "in_rate": in_rate,
        "out_rate": out_rate,
        "chunk_samples": n,
        "taps": ours.design.num_taps,
        "taps_per_output": ours.design.taps_per_phase,
        "ours_us": round(ours_us, 2),
        "ours_int16_us": round(ours_i16_us, 2),
        "soxr_hq_us": round(soxr_us, 2),
        "scipy_resample_poly_us": round(scipy_us, 2),
        "ratio_ours_soxr": round(ours_us / soxr_us, 3),
        "ours_us_best": round(ours_best, 2),
        "soxr_hq_us_best": round(soxr_best, 2),
        "ratio_ours_soxr_best": round(ours_best / soxr_best, 3),
        "ratio_ours_scipy": round(ours_us / scipy_us, 3),
        "delay_ms": round(ours.delay_ms, 3),
        "delay_measured_ms": round(measured_delay_ms(in_rate, out_rate), 3),
        "soxr_hq_latency_ms": round(_soxr_latency_ms(in_rate, out_rate), 2),
        "timing": "median of interleaved runs (best run beside it)",
        "stopband_db": round(atten, 1),
        "passband_hz": round(ours.design.passband_hz),
    }


_COLD_SCRIPT = """
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from bargein.dsp import Resampler, rms_dbfs, warm_up
t1 = time.perf_counter()
warm_s = warm_up() if sys.argv[1] == "warm" else 0.0
x = np.zeros(960, np.float32)
t2 = time.perf_counter()
r = Resampler(48000, 16000)  # binds the kernel's native entry: compiles or loads it if cold
r.process(x)
rms_dbfs(np.zeros(320, np.int16))
t3 = time.perf_counter()
r.process(x)
t4 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "warm_up_s": warm_s, "first_call_s": t3 - t2,
                  "second_call_s": t4 - t3}))
"""


def _run_fresh(script: str, cache_dir: str, mode: str) -> dict[str, float]:
    # The child imports bargein from this same tree, installed or not.
    root = str(Path(__file__).resolve().parent.parent.parent)
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=path)
    done = subprocess.run(
        [sys.executable, "-c", script, mode], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"cold-start child failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def cold_start() -> dict[str, Any]:
    """Fresh processes, empty vs filled numba cache, with and without warm_up() first.

    "First call" is a new Resampler plus its first process(): without warm-up it pays numba's
    start-up (target initialization) plus the compile or the cache load; after warm_up() it
    costs what any other call does.
    """
    ms = 1e3
    with tempfile.TemporaryDirectory() as warm:
        with tempfile.TemporaryDirectory() as empty:
            no_cache = _run_fresh(_COLD_SCRIPT, empty, "cold")  # compiles, fills `empty`
        with tempfile.TemporaryDirectory() as empty:
            warm_no_cache = _run_fresh(_COLD_SCRIPT, empty, "warm")
        _run_fresh(_COLD_SCRIPT, warm, "warm")  # fill the cache every run below loads from
        cached = _run_fresh(_COLD_SCRIPT, warm, "cold")
        warm_cached = _run_fresh(_COLD_SCRIPT, warm, "warm")
    return {
        "import_ms": round(cached["import_s"] * ms, 1),
        "first_call_no_cache_ms": round(no_cache["first_call_s"] * ms, 1),
        "first_call_cached_ms": round(cached["first_call_s"] * ms, 1),
        "warm_up_no_cache_ms": round(warm_no_cache["warm_up_s"] * ms, 1),
        "warm_up_cached_ms": round(warm_cached["warm_up_s"] * ms, 1),
        "first_call_after_warm_up_us": round(warm_cached["first_call_s"] * 1e6, 1),
        "second_call_us": round(warm_cached["second_call_s"] * 1e6, 1),
    }


def _table(rows: list[dict[str, Any]]) -> str:
    cols = [
        ("conversion", "conversion", 14), ("ours_us", "ours µs", 8),
        ("soxr_hq_us", "soxr µs", 8), ("scipy_resample_poly_us", "scipy µs", 9),
        ("ratio_ours_soxr", "ours/soxr", 9), ("delay_ms", "delay ms", 8),
        ("soxr_hq_latency_ms", "soxr lat ms", 11), ("stopband_db", "stop dB", 8),
        ("passband_hz", "pass Hz", 8), ("taps_per_output", "taps/out", 8),
    ]
    lines = ["  ".join(f"{title:>{w}}" for _, title, w in cols)]
    for row in rows:
        lines.append("  ".join(f"{row[key]!s:>{w}}" for key, _, w in cols))
    return "\n".join(lines)
