"""A reader for the safetensors format, with json and numpy only.

Layout: an unsigned 64-bit little-endian header length N, N bytes of JSON mapping each tensor
name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the end of the
header), then the raw little-endian tensor data.
"""
from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

_DTYPES = {
    "F64": np.dtype("<f8"), "F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"), "I32": np.dtype("<i4"), "I16": np.dtype("<i2"), "I8": np.dtype("i1"),
    "U8": np.dtype("u1"), "BOOL": np.dtype("?"),
}


class SafetensorsError(ValueError):
    """A safetensors file is truncated or malformed."""


_MAX_HEADER = 100_000_000
_MAX_RANK = 32


def _offset(v, name, path) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise SafetensorsError(f"{path}: tensor {name!r}: data_offsets must be non-negative integers, "
                               f"got {v!r:.60}")
    return v


def read_safetensors(path, float32: bool = True) -> dict:
    """All tensors of a ``.safetensors`` file as numpy arrays (memory-mapped where possible).

    With ``float32``, F16/BF16/F64 tensors are converted to float32 (BF16: the upper half of a
    float32). Raises SafetensorsError naming the file on a malformed or truncated file. The
    header length, every shape and every data range are checked against the file's length
    before anything is allocated or mapped.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: truncated (no header length)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, _MAX_HEADER):
            raise SafetensorsError(f"{path}: header length {n} does not fit the file ({size} bytes)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{path}: malformed header ({e})") from None
        except RecursionError:
            raise SafetensorsError(f"{path}: malformed header (JSON nested too deeply)") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: malformed header (not a JSON object)")
    base = 8 + n
    payload = size - base
    entries = []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        except (TypeError, KeyError):
            raise SafetensorsError(f"{path}: tensor {name!r} has a malformed entry") from None
        if not isinstance(dtype_name, str) or dtype_name not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {dtype_name!r:.60}")
        dtype = _DTYPES[dtype_name]
        if (not isinstance(shape, list) or len(shape) > _MAX_RANK
                or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in shape)):
            raise SafetensorsError(f"{path}: tensor {name!r}: shape must be a list of at most {_MAX_RANK} "
                                   f"non-negative integers, got {shape!r:.80}")
        if not isinstance(offsets, list) or len(offsets) != 2:
            raise SafetensorsError(f"{path}: tensor {name!r}: data_offsets must be [begin, end], "
                                   f"got {offsets!r:.60}")
        begin, end = (_offset(v, name, path) for v in offsets)
        count = math.prod(shape)  # Python integers: huge shapes fail the size check, not overflow
        if begin > end or end > payload or end - begin != count * dtype.itemsize:
            raise SafetensorsError(f"{path}: tensor {name!r} (shape {shape}, {dtype_name}) does not fit "
                                   f"its data range [{begin}, {end}) of a {payload}-byte payload")
        if count == 0 and any(d > 1 << 40 for d in shape):
            raise SafetensorsError(f"{path}: tensor {name!r} has an impossible shape {shape}")
        entries.append((name, dtype_name, dtype, shape, begin, end))
    data = np.memmap(path, dtype=np.uint8, mode="r") if size > base else np.zeros(0, np.uint8)
    out = {}
    for name, dtype_name, dtype, shape, begin, end in entries:
        arr = data[base + begin:base + end].view(dtype).reshape(shape)
        if float32:
            if dtype_name == "BF16":
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            elif dtype_name in ("F16", "F64"):
                arr = arr.astype(np.float32)
        out[name] = arr
    return out
