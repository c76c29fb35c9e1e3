"""Argument checks and table layout shared by the hash embeddings."""
from __future__ import annotations

import numbers
from typing import Optional

import numpy as np

from .._checks import as_int


def as_uint64(x, name: str, ndim: Optional[int] = 1) -> np.ndarray:
    """uint64 ids: a numpy uint64 array, or a list of non-negative Python ints."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint64:
            hint = ""
            if x.dtype.kind in "iu":
                hint = (f"; convert with {name}.astype(np.uint64) (negative values then wrap "
                        "around modulo 2**64, as thinc's as_contig does)")
            raise TypeError(f"{name}: expected a numpy array of dtype uint64, got {x.dtype}{hint}")
        arr = x
    elif isinstance(x, (list, tuple, range)):
        items = list(x)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
                if isinstance(v, (list, tuple, np.ndarray)):
                    continue  # nested rows: checked by numpy below
                raise TypeError(f"{name}: expected integers, got {type(v).__name__}")
        try:
            arr = np.array(items, dtype=np.uint64) if items else np.zeros(0, np.uint64)
        except OverflowError:
            raise ValueError(f"{name}: values must be in [0, 2**64); got a negative or larger "
                             "value") from None
        if arr.size and any(isinstance(v, (numbers.Integral, np.integer)) and int(v) < 0
                            for v in items):
            raise ValueError(f"{name}: values must be in [0, 2**64); got a negative value")
    else:
        raise TypeError(f"{name}: expected a numpy array of dtype uint64 (or a list of ints), "
                        f"got {type(x).__name__}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def as_seed(seed, name: str = "seed") -> int:
    seed = as_int(seed, name, minimum=0)
    if seed > 0xFFFFFFFF:
        raise ValueError(f"{name} must be < 2**32 (a uint32, as in thinc), got {seed}")
    return seed


def aligned64(a: np.ndarray) -> np.ndarray:
    """``a`` itself when its data is 64-byte aligned, else an aligned copy (rows of tables
    then start on cache lines, so vector loads do not straddle two of them)."""
    if a.ctypes.data % 64 == 0:
        return a
    buf = np.empty(a.nbytes + 64, np.uint8)
    start = (-buf.ctypes.data) % 64
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


def as_index_array(x, name: str) -> np.ndarray:
    """Any integer ids as int64 (uint64 values >= 2**63 are out of range for every table)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
        if x.size == 0:
            x = x.astype(np.int64)
    if x.dtype.kind not in "iu" or x.dtype == np.bool_:
        raise TypeError(f"{name}: expected an integer array, got dtype {x.dtype}")
    if x.dtype == np.uint64 and x.size and x.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: value {int(x.max())} is out of range")
    return np.ascontiguousarray(x, dtype=np.int64)
