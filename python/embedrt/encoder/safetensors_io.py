"""A reader for the safetensors format, with json and numpy only.

Layout: an unsigned 64-bit little-endian header length N, N bytes of JSON mapping each tensor
name to ``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the end of the
header), then the raw little-endian tensor data.
"""
from __future__ import annotations

import json
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


def read_safetensors(path, float32: bool = True) -> dict:
    """All tensors of a ``.safetensors`` file as numpy arrays (memory-mapped where possible).

    With ``float32``, F16/BF16/F64 tensors are converted to float32 (BF16: the upper half of a
    float32). Raises SafetensorsError naming the file on a malformed or truncated file.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SafetensorsError(f"{path}: truncated (no header length)")
        (n,) = struct.unpack("<Q", head)
        if n > min(size - 8, 100_000_000):
            raise SafetensorsError(f"{path}: header length {n} does not fit the file ({size} bytes)")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SafetensorsError(f"{path}: malformed header ({e})") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: malformed header (not a JSON object)")
    base = 8 + n
    data = np.memmap(path, dtype=np.uint8, mode="r") if size > base else np.zeros(0, np.uint8)
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype_name, shape, (begin, end) = info["dtype"], list(info["shape"]), info["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise SafetensorsError(f"{path}: tensor {name!r} has a malformed entry") from None
        dtype = _DTYPES.get(dtype_name)
        if dtype is None:
            raise SafetensorsError(f"{path}: tensor {name!r} has unsupported dtype {dtype_name}")
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if not (0 <= begin <= end) or end - begin != count * dtype.itemsize or base + end > size:
            raise SafetensorsError(f"{path}: tensor {name!r} (shape {shape}, {dtype_name}) does not fit "
                                   f"its data range [{begin}, {end}) of a {size - base}-byte payload")
        arr = data[base + begin:base + end].view(dtype).reshape(shape)
        if float32:
            if dtype_name == "BF16":
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            elif dtype_name in ("F16", "F64"):
                arr = arr.astype(np.float32)
        out[name] = arr
    return out
