"""DSP benchmark: our streaming resampler vs soxr (HQ, streaming) vs scipy.resample_poly.

Per conversion, on 20 ms chunks: microseconds per chunk for each, ours/soxr and ours/scipy,
our group delay and measured stopband attenuation, and soxr's measured latency for contrast.
Then the cold-start cost of a fresh process, with an empty and with a warm numba cache.
soxr and scipy are test extras, imported here only.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bargein.dsp import COMMON_CONVERSIONS, Resampler, warm_up
from bargein.dsp.analysis import measured_delay_ms, stopband_attenuation_db

CHUNK_MS = 20
TARGET_RATIO = 1.0
TARGET_DELAY_MS = 3.0
TARGET_ATTEN_DB = 80.0


def _time_per_call_us(
    fns: dict[str, Callable[[], object]], calls: int, repeats: int
) -> dict[str, tuple[float, float]]:
    """(median, best) mean time per call over ``repeats`` runs of ``calls`` calls each.

    The contenders are interleaved run by run, so load from other processes on this shared
    machine hits all of them alike. The median is the figure judged; the best (least
    disturbed run) is given beside it.
    """
    for fn in fns.values():
        for _ in range(min(calls, 50)):
            fn()
    runs: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter_ns()
            for _ in range(calls):
                fn()
            runs[name].append((time.perf_counter_ns() - t0) / calls / 1e3)
    return {name: (float(np.median(v)), min(v)) for name, v in runs.items()}


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
    best = _time_per_call_us(
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
    scipy_us = _time_per_call_us(
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bargein bench dsp", description=__doc__)
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    parser.add_argument("--calls", type=int, default=500, help="calls per timing run")
    parser.add_argument("--repeats", type=int, default=15,
                        help="timing runs (median reported, best beside it)")
    parser.add_argument("--tones", type=int, default=120,
                        help="tones for the stopband measurement (0 to skip)")
    parser.add_argument("--no-cold-start", action="store_true", help="skip the subprocess runs")
    parser.add_argument("--only", default="", help="comma list like 48000-16000,8000-16000")
    args = parser.parse_args(argv)

    conversions = list(COMMON_CONVERSIONS)
    if args.only:
        conversions = [
            (int(a), int(b)) for a, b in (item.split("-") for item in args.only.split(","))
        ]
    warm_s = warm_up()
    rows = [bench_conversion(a, b, args.calls, args.repeats, args.tones) for a, b in conversions]
    ok = all(
        r["ratio_ours_soxr"] <= TARGET_RATIO
        and r["delay_ms"] <= TARGET_DELAY_MS
        and (math.isnan(r["stopband_db"]) or r["stopband_db"] >= TARGET_ATTEN_DB)
        for r in rows
    )
    result: dict[str, Any] = {
        "benchmark": "dsp",
        "chunk_ms": CHUNK_MS,
        "numpy": np.__version__,
        "targets": {
            "ratio_ours_soxr_max": TARGET_RATIO,
            "delay_ms_max": TARGET_DELAY_MS,
            "stopband_db_min": TARGET_ATTEN_DB,
        },
        "targets_met": ok,
        "warm_up_ms_this_process": round(warm_s * 1e3, 1),
        "conversions": rows,
    }
    if not args.no_cold_start:
        result["cold_start"] = cold_start()
    if args.json:
        print(json.dumps(result))
    else:
        print(_table(rows))
        print(f"targets met: {ok} (ours/soxr <= {TARGET_RATIO}, delay <= {TARGET_DELAY_MS} ms, "
              f"stopband >= {TARGET_ATTEN_DB} dB)")
        if "cold_start" in result:
            for key, value in result["cold_start"].items():
                print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
