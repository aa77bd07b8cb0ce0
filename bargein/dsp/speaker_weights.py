"""Read a PyTorch checkpoint's tensors into numpy without torch.

``torch.save`` writes one of two layouts, and both are read here:

- **legacy** (torch < 1.6, e.g. Resemblyzer's ``pretrained.pt``): five pickles in a row: the
  magic number, the protocol version (1001), a dict of type sizes, the object itself (its
  storages pickled as persistent ids ``('storage', <Storage class>, key, location, numel,
  view)``), then the list of storage keys in the order their bytes follow, each as a little
  endian int64 element count and ``count * itemsize`` raw bytes;
- **zip** (torch >= 1.6): ``<name>/data.pkl`` with persistent ids ``('storage', <Storage
  class>, key, location, numel)`` and each storage's bytes in ``<name>/data/<key>``.

The unpickler is restricted: it resolves only the globals a state dict of tensors needs
(``collections.OrderedDict``, ``torch._utils._rebuild_tensor_v2`` / ``_rebuild_tensor``, the
typed storage classes, ``torch._utils._rebuild_parameter``) and refuses every other global,
so loading a file runs no code from it. Tensors come back as numpy arrays (views of the
storage, copied to be contiguous); ``requires_grad`` and hooks are dropped.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["UnsupportedCheckpoint", "load_checkpoint"]

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001

_DTYPES = {
    "FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
    "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
    "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_,
}  # fmt: skip


class UnsupportedCheckpoint(ValueError):
    """Not a checkpoint this reader understands (or a global it refuses)."""


class _StorageType:
    """Stands for ``torch.<X>Storage`` in the pickle: only its dtype is used."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = np.dtype(_DTYPES[name])


def _rebuild_tensor(storage: NDArray[Any], offset: int, size: tuple[int, ...],
                    stride: tuple[int, ...], *_: Any) -> NDArray[Any]:
    """A tensor from its storage (a flat array), as ``torch._utils._rebuild_tensor_v2``."""
    item = storage.itemsize
    if not size:
        return storage[offset : offset + 1].reshape(()).copy()
    view = np.lib.stride_tricks.as_strided(storage[offset:], shape=size,
                                           strides=tuple(s * item for s in stride))
    return np.ascontiguousarray(view)


def _rebuild_parameter(data: NDArray[Any], *_: Any) -> NDArray[Any]:
    return data


_GLOBALS: dict[tuple[str, str], Callable[..., Any]] = {
    ("collections", "OrderedDict"): OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
}


class _Unpickler(pickle.Unpickler):
    def __init__(self, f: IO[bytes], storage: Callable[[tuple[Any, ...]], NDArray[Any]]) -> None:
        super().__init__(f)
        self._storage = storage

    def find_class(self, module: str, name: str) -> Any:
        if module == "torch" and name in _DTYPES:
            return _StorageType(name)
        if (module, name) in _GLOBALS:
            return _GLOBALS[(module, name)]
        raise UnsupportedCheckpoint(f"refused global {module}.{name}")

    def persistent_load(self, pid: Any) -> Any:
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise UnsupportedCheckpoint(f"unknown persistent id {pid!r:.60}")
        return self._storage(pid)


def _load_legacy(f: IO[bytes]) -> Any:
    magic = pickle.load(f)  # plain ints and a dict: no globals
    if magic != LEGACY_MAGIC:
        raise UnsupportedCheckpoint("not a torch checkpoint (bad magic number)")
    if pickle.load(f) != LEGACY_PROTOCOL:
        raise UnsupportedCheckpoint("unknown legacy protocol version")
    sizes = pickle.load(f)
    if not sizes.get("little_endian", False):
        raise UnsupportedCheckpoint("big-endian checkpoint")
    storages: dict[str, NDArray[Any]] = {}
    dtypes: dict[str, np.dtype[Any]] = {}

    def storage(pid: tuple[Any, ...]) -> NDArray[Any]:
        _, kind, key, _location, numel = pid[:5]
        if pid[5:] and pid[5] is not None:
            raise UnsupportedCheckpoint("storage views are not supported")
        if key not in storages:
            dtypes[key] = kind.dtype
            storages[key] = np.empty(numel, kind.dtype)  # filled after the key list
        return storages[key]

    obj = _Unpickler(f, storage).load()
    for key in pickle.load(f):
        count = int(np.frombuffer(f.read(8), "<i8")[0])
        buf = storages[key]
        if count != buf.size:
            raise UnsupportedCheckpoint(f"storage {key}: {count} elements, expected {buf.size}")
        data = f.read(count * dtypes[key].itemsize)
        buf[:] = np.frombuffer(data, dtypes[key].newbyteorder("<"))
    return obj


def _load_zip(z: zipfile.ZipFile) -> Any:
    pkl = next((n for n in z.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
    if pkl is None:
        raise UnsupportedCheckpoint("zip without data.pkl")
    root = pkl[: -len("data.pkl")]

    def storage(pid: tuple[Any, ...]) -> NDArray[Any]:
        _, kind, key, _location, numel = pid[:5]
        raw = z.read(f"{root}data/{key}")
        return np.frombuffer(raw, kind.dtype.newbyteorder("<"), count=numel).copy()

    cache: dict[str, NDArray[Any]] = {}

    def cached(pid: tuple[Any, ...]) -> NDArray[Any]:
        key = str(pid[2])
        if key not in cache:
            cache[key] = storage(pid)
        return cache[key]

    return _Unpickler(io.BytesIO(z.read(pkl)), cached).load()


def load_checkpoint(path: Path) -> Any:
    """The object ``torch.save`` wrote, its tensors as numpy arrays."""
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return _load_zip(z)
    with path.open("rb") as f:
        return _load_legacy(f)
