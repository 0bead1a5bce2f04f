"""Read PyTorch's legacy (pre-1.6) ``.pth`` serialization without PyTorch.

The legacy format is a sequence of pickles: magic number, protocol version,
system info, the object itself (whose tensors refer to storages by persistent
id), the list of storage keys, then each storage's raw bytes preceded by its
element count.  Only what a state dict needs is understood here.
"""

from __future__ import annotations

import collections
import pickle
import struct
from typing import BinaryIO

import numpy as np

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _Storage:
    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.data: np.ndarray | None = None


def _rebuild_tensor(storage, offset, size, stride, *_):
    itemsize = storage.dtype.itemsize
    return _LazyTensor(storage, offset, tuple(size), tuple(s * itemsize for s in stride))


class _LazyTensor:
    """A view on a storage whose bytes are read after the main pickle."""

    def __init__(self, storage, offset, shape, strides):
        self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides

    def materialize(self) -> np.ndarray:
        flat = self.storage.data[self.offset :]
        view = np.lib.stride_tricks.as_strided(flat, shape=self.shape, strides=self.strides)
        return np.array(view)


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self._storages = storages

    def find_class(self, module, name):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        raise pickle.UnpicklingError(f"unsupported object in checkpoint: {module}.{name}")

    def persistent_load(self, saved_id):
        typename, storage_type, key, _location, _numel, view = saved_id
        if typename != "storage":
            raise pickle.UnpicklingError(f"unsupported persistent id {typename!r}")
        if view is not None:
            raise pickle.UnpicklingError("storage views are not supported")
        if key not in self._storages:
            self._storages[key] = _Storage(storage_type)
        return self._storages[key]


def load_state_dict(path) -> dict[str, np.ndarray]:
    """Return the checkpoint's tensors as NumPy arrays, keyed as in PyTorch."""
    with open(path, "rb") as f:
        return _load(f)


def _load(f: BinaryIO) -> dict[str, np.ndarray]:
    if pickle.load(f) != LEGACY_MAGIC:
        raise ValueError("not a legacy PyTorch checkpoint (bad magic number)")
    pickle.load(f)  # protocol version
    sys_info = pickle.load(f)
    if not sys_info.get("little_endian", True):
        raise ValueError("big-endian checkpoints are not supported")
    storages: dict[str, _Storage] = {}
    obj = _Unpickler(f, storages).load()
    for key in pickle.load(f):
        storage = storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        raw = f.read(count * storage.dtype.itemsize)
        storage.data = np.frombuffer(raw, dtype=storage.dtype, count=count)
    if "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return {k: v.materialize() for k, v in obj.items() if isinstance(v, _LazyTensor)}
