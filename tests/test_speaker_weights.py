"""The torch-free checkpoint reader (bargein.dsp.speaker_weights): both layouts torch.save
writes, made here as torch writes them (stand-in ``torch`` modules exist only while pickling:
no torch needed), and its refusal of any other global."""

from __future__ import annotations

import io
import pickle
import sys
import types
import zipfile
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bargein.dsp.speaker_weights import (
    LEGACY_MAGIC,
    LEGACY_PROTOCOL,
    UnsupportedCheckpoint,
    load_checkpoint,
)


@contextmanager
def _fake_torch() -> Iterator[types.ModuleType]:
    """`torch.FloatStorage`, `torch.DoubleStorage`, `torch._utils._rebuild_tensor_v2` under
    their real names, so pickle writes the GLOBAL opcodes torch's files hold."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    for name in ("FloatStorage", "DoubleStorage"):
        cls = type(name, (), {"__module__": "torch", "__qualname__": name})
        setattr(torch, name, cls)

    def _rebuild_tensor_v2(*args: Any) -> None:
        raise AssertionError("never called while pickling")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    torch._utils = utils  # type: ignore[attr-defined]
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


class _Storage:
    def __init__(self, key: str, data: np.ndarray, kind: str) -> None:
        self.key, self.data, self.kind = key, data, kind


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple[int, ...],
                 stride: tuple[int, ...]) -> None:
        self.args = (storage, offset, size, stride, False, OrderedDict())

    def __reduce__(self) -> Any:
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


class _Pickler(pickle.Pickler):
    def __init__(self, f: io.BytesIO, legacy: bool) -> None:
        super().__init__(f, protocol=2)
        self.legacy = legacy

    def persistent_id(self, obj: Any) -> Any:
        if isinstance(obj, _Storage):
            kind = getattr(sys.modules["torch"], obj.kind)
            pid = ("storage", kind, obj.key, "cpu", obj.data.size)
            return (*pid, None) if self.legacy else pid  # legacy adds the view metadata
        return None


def _state() -> tuple[dict[str, Any], list[_Storage]]:
    a = _Storage("140", np.arange(6, dtype=np.float32), "FloatStorage")
    b = _Storage("141", np.array([1.5, -2.5], np.float64), "DoubleStorage")
    state = OrderedDict(
        w=_Tensor(a, 0, (3, 2), (1, 3)),  # the transpose of a (2, 3) row-major tensor
        row=_Tensor(a, 3, (3,), (1,)),  # a view at an offset of the same storage
        b=_Tensor(b, 0, (2,), (1,)),
    )
    return {"model_state": state, "step": 7}, [a, b]


def _dump(obj: Any, legacy: bool) -> bytes:
    buf = io.BytesIO()
    with _fake_torch():
        _Pickler(buf, legacy).dump(obj)
    return buf.getvalue()


def write_legacy(path: Path) -> None:
    obj, storages = _state()
    with path.open("wb") as f:
        for head in (LEGACY_MAGIC, LEGACY_PROTOCOL,
                     {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(head, f, protocol=2)
        f.write(_dump(obj, legacy=True))
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(np.int64(s.data.size).tobytes())
            f.write(s.data.tobytes())


def write_zip(path: Path) -> None:
    obj, storages = _state()
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _dump(obj, legacy=False))
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.data.tobytes())
        z.writestr("archive/version", "3\n")


@pytest.mark.parametrize("write", [write_legacy, write_zip], ids=["legacy", "zip"])
def test_tensors_come_back_with_their_strides_offsets_and_dtypes(tmp_path: Path,
                                                                 write: Any) -> None:
    path = tmp_path / "model.pt"
    write(path)
    out = load_checkpoint(path)
    assert out["step"] == 7
    state = out["model_state"]
    assert list(state) == ["w", "row", "b"]
    np.testing.assert_array_equal(state["w"], np.arange(6, dtype=np.float32).reshape(2, 3).T)
    assert state["w"].dtype == np.float32 and state["w"].flags.c_contiguous
    np.testing.assert_array_equal(state["row"], [3.0, 4.0, 5.0])
    np.testing.assert_array_equal(state["b"], [1.5, -2.5])
    assert state["b"].dtype == np.float64


class _Evil:
    def __reduce__(self) -> Any:
        import os

        return (os.system, ("true",))


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_any_other_global_is_refused(tmp_path: Path, legacy: bool) -> None:
    path = tmp_path / "evil.pt"
    body = pickle.dumps({"model_state": _Evil()}, protocol=2)
    if legacy:
        with path.open("wb") as f:
            for head in (LEGACY_MAGIC, LEGACY_PROTOCOL, {"little_endian": True}):
                pickle.dump(head, f, protocol=2)
            f.write(body)
            pickle.dump([], f, protocol=2)
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("archive/data.pkl", body)
    with pytest.raises(UnsupportedCheckpoint, match="refused global"):
        load_checkpoint(path)


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    path.write_bytes(pickle.dumps(12345))
    with pytest.raises(UnsupportedCheckpoint, match="magic"):
        load_checkpoint(path)
