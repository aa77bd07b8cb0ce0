"""DSP benchmark: our streaming resampler vs soxr (HQ, streaming) vs scipy.resample_poly;
our echo canceller vs speex's (MDF, through the ``pyaec`` wheel when installed); the ducking
ramp; Smart Turn's CPU per decision.

Resampling, per conversion, on 20 ms chunks: microseconds per chunk for each, ours/soxr and
ours/scipy, our group delay and measured stopband attenuation, and soxr's measured latency for
contrast. Then the cold-start cost of a fresh process, with an empty and with a warm numba
cache. soxr and scipy are test extras, imported here only.

Echo: mixes of the shared recordings (24 s of far-end speech through synthetic rooms, see
``bargein.dsp.echo_mix``; a near-end talker over it from 15 s for double talk): ERLE in the
first 2 s, 2-6 s and steady state (10 s on), near-end SNR during double talk, and µs per 20 ms
frame at 16 kHz, interleaved with speex's. ``pyaec`` is a benchmark-only contender, never a
dependency (``pip install pyaec``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from typing import Any

import numpy as np

from bargein.benchmarks.dsp_echo import TARGET_ERLE_DB, bench_duck, bench_echo
from bargein.benchmarks.dsp_resample import CHUNK_MS, _table, bench_conversion, cold_start
from bargein.dsp import COMMON_CONVERSIONS, warm_up

__all__ = [
    "CHUNK_MS",
    "TARGET_ERLE_DB",
    "bench_conversion",
    "bench_duck",
    "bench_echo",
    "bench_smart_turn",
    "cold_start",
    "main",
]

TARGET_RATIO = 1.0
TARGET_DELAY_MS = 3.0
TARGET_ATTEN_DB = 80.0


def bench_smart_turn(runs: int) -> dict[str, Any]:
    from bargein.decide.smart_turn import SmartTurn, unavailable_reason
    from bargein.testing.audio import load

    reason = unavailable_reason()
    if reason is not None:
        return {"skipped": reason}
    t0 = time.perf_counter()
    model = SmartTurn()
    load_ms = (time.perf_counter() - t0) * 1e3
    audio = load("deepspeech_arctic_a0024.wav")
    model.predict(audio)
    feats, infer, wall = [], [], []
    for _ in range(runs):
        t = time.perf_counter()
        p = model.predict(audio)
        wall.append((time.perf_counter() - t) * 1e3)
        feats.append(p.features_ms)
        infer.append(p.inference_ms)
    return {
        "model": str(model.model_path.name),
        "load_ms": round(load_ms, 1),
        "features_cpu_ms": round(float(np.median(feats)), 1),
        "inference_cpu_ms": round(float(np.median(infer)), 1),
        "decision_wall_ms": round(float(np.median(wall)), 1),
        "decision_wall_ms_best": round(min(wall), 1),
        "threads": 1,
        "runs": runs,
    }



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
    parser.add_argument("--sections", default="resample,echo,duck,turn",
                        help="comma list of resample, echo, duck, turn")
    parser.add_argument("--turn-runs", type=int, default=20, help="Smart Turn decisions timed")
    args = parser.parse_args(argv)
    sections = {s.strip() for s in args.sections.split(",") if s.strip()}
    unknown = sections - {"resample", "echo", "duck", "turn"}
    if unknown:
        parser.error(f"unknown sections: {sorted(unknown)}")

    conversions = list(COMMON_CONVERSIONS)
    if args.only:
        try:
            conversions = [
                (int(a), int(b)) for a, b in (item.split("-") for item in args.only.split(","))
            ]
        except ValueError:
            parser.error(f"--only takes rate pairs like 48000-16000,8000-16000, not {args.only!r}"
                         " (--sections picks echo, duck or turn)")
    warm_s = warm_up()
    rows = [bench_conversion(a, b, args.calls, args.repeats, args.tones) for a, b in conversions
            ] if "resample" in sections else []
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
    if not args.no_cold_start and "resample" in sections:
        result["cold_start"] = cold_start()
    if "echo" in sections:
        result["echo"] = bench_echo(max(args.calls // 5, 20), args.repeats)
    if "duck" in sections:
        result["duck"] = bench_duck(args.calls, args.repeats)
    if "turn" in sections:
        result["smart_turn"] = bench_smart_turn(args.turn_runs)
    if args.json:
        print(json.dumps(result))
    else:
        print(_table(rows))
        for key in ("echo", "duck", "smart_turn"):
            if key in result:
                print(f"{key}: {json.dumps(result[key], indent=1)}")
        print(f"targets met: {ok} (ours/soxr <= {TARGET_RATIO}, delay <= {TARGET_DELAY_MS} ms, "
              f"stopband >= {TARGET_ATTEN_DB} dB)")
        if "cold_start" in result:
            for key, value in result["cold_start"].items():
                print(f"{key:>24}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
