"""Argument checks shared by the Python layer. Every message names the argument.

What guards memory (widths, sizes, offsets, the int8 k limit) the C++ bindings check, so that
``_core`` is safe on its own; the Python layer does not repeat those checks, it converts and
names the arguments and checks what the bindings do not see (see kernels.py).
"""
from __future__ import annotations

import numbers

import numpy as np


def as_array(x, name: str, dtype, ndim=None, allow_1d: bool = False) -> np.ndarray:
    """A C-contiguous array of exactly `dtype` (TypeError if the dtype differs).

    ndim: required number of dimensions; with allow_1d a 1-D input is taken as one row.
    Non-contiguous inputs are copied.
    """
    if not isinstance(x, np.ndarray):
        if isinstance(x, (list, tuple)):
            x = np.asarray(x)
            if x.dtype != np.dtype(dtype) and not (x.size == 0):
                raise TypeError(f"{name}: expected a numpy array of dtype {np.dtype(dtype).name}, "
                                f"got a {type(x).__name__} of {x.dtype}")
            x = x.astype(dtype, copy=False)
        else:
            raise TypeError(f"{name}: expected a numpy array of dtype {np.dtype(dtype).name}, "
                            f"got {type(x).__name__}")
    if x.dtype != np.dtype(dtype):
        raise TypeError(f"{name}: expected dtype {np.dtype(dtype).name}, got {x.dtype}")
    if ndim is not None:
        if allow_1d and x.ndim == 1 and ndim == 2:
            x = x.reshape(1, -1)
        if x.ndim != ndim:
            raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
    return np.ascontiguousarray(x)


def as_float32(x, name: str, ndim=2, allow_1d: bool = False, finite: bool = True) -> np.ndarray:
    """Float input (float16/32/64) as C-contiguous float32; rejects integer and bool arrays,
    and NaN or inf when `finite`."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
        if x.size == 0 and x.dtype == np.float64:
            x = x.astype(np.float32)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected a floating-point array, got dtype {x.dtype}")
    if allow_1d and x.ndim == 1 and ndim == 2:
        x = x.reshape(1, -1)
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {x.shape}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if finite and x.size and not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return x


def as_int(v, name: str, minimum=None) -> int:
    if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    v = int(v)
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def as_k(k, n: int) -> int:
    """The `k` of a top-k search (an int >= 1) limited to the `n` rows searched."""
    return min(as_int(k, "k", minimum=1), n)


def float_rows(x, name: str, dim: int) -> np.ndarray:
    """Float embeddings ``[n, dim]`` (one ``[dim]`` is one row) as C-contiguous float32; integer
    and bool arrays raise TypeError, a different width, NaN or infinity ValueError."""
    if isinstance(x, np.ndarray) and x.dtype.kind in "iub":
        raise TypeError(f"{name}: expected float embeddings, got dtype {x.dtype}")
    x = as_float32(x, name, ndim=2, allow_1d=True)
    if x.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} dimensions, got {x.shape[1]}")
    return x
