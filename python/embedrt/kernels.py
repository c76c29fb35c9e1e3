"""Thin, checked wrappers over the native kernels (numpy in, numpy out).

Every function validates its arguments (dtype, shape, widths) and raises TypeError or
ValueError naming the argument; the native call releases the GIL.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._checks import as_array, as_float32, as_int

# ----------------------------------------------------------------------------------------
# bit codes: pack_bits, unpack_bits, hamming, hamming_topk, binary_matmul
# ----------------------------------------------------------------------------------------



# ----------------------------------------------------------------------------------------
# (end of bit codes)
# ----------------------------------------------------------------------------------------




# ----------------------------------------------------------------------------------------
# int8: int8_matmul, Int8Matrix, pack_int8
# ----------------------------------------------------------------------------------------

#: Largest inner dimension k of an exact int8 product (int32 accumulators cannot overflow).
INT8_MAX_K = int(_core.INT8_MAX_K)


def _check_k(k: int) -> None:
    if k > INT8_MAX_K:
        raise ValueError(f"k = {k} exceeds the int8 product limit INT8_MAX_K = {INT8_MAX_K} "
                         "(int32 accumulators could overflow)")


class Int8Matrix:
    """An int8 matrix ``B[n, k]`` packed once for repeated exact products ``A . B^T``.

    ``Int8Matrix(b).matmul(a)`` equals ``int8_matmul(a, b)``; packing (a reordering of B for
    the SIMD kernels, plus per-row sums) is done once here instead of on every call.
    """

    __slots__ = ("_packed", "_shape")

    def __init__(self, b):
        b = as_array(b, "b", np.int8, ndim=2)
        _check_k(b.shape[1])
        self._packed = _core.int8_pack(b)
        self._shape = (int(b.shape[0]), int(b.shape[1]))

    @property
    def shape(self) -> tuple:
        """(n, k) of the packed matrix."""
        return self._shape

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed form."""
        return int(self._packed.nbytes)

    def __repr__(self) -> str:
        return f"Int8Matrix(shape={self._shape})"

    def matmul(self, a, a_scale=None, b_scale=None, out=None):
        """``int8_matmul(a, self, a_scale, b_scale, out)``."""
        return int8_matmul(a, self, a_scale=a_scale, b_scale=b_scale, out=out)


def pack_int8(b) -> Int8Matrix:
    """Packs an int8 matrix ``B[n, k]`` for reuse; the same as ``Int8Matrix(b)``."""
    return Int8Matrix(b)


def _scale_vector(s, n: int, name: str) -> np.ndarray:
    if isinstance(s, np.ndarray) and s.ndim > 0:
        if s.dtype.kind != "f":
            raise TypeError(f"{name}: expected a float scale or a float array, got dtype {s.dtype}")
        if s.ndim != 1 or s.shape[0] != n:
            raise ValueError(f"{name}: expected a scalar or {n} per-row scales, got shape {s.shape}")
        v = np.ascontiguousarray(s, dtype=np.float32)
    else:
        if isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, float, np.integer, np.floating)):
            raise TypeError(f"{name}: expected a float or a float32 array, got {type(s).__name__}")
        v = np.full(n, s, dtype=np.float32)
    if not np.isfinite(v).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return v


def int8_matmul(a, b, a_scale=None, b_scale=None, out=None) -> np.ndarray:
    """Exact int8 matrix product ``a . b^T``.

    a: int8 [m, k]. b: int8 [n, k] or an :class:`Int8Matrix` (packed once, reused).
    Without scales the result is the exact int32 [m, n] product (k <= INT8_MAX_K).
    With ``a_scale`` and/or ``b_scale`` (a float, or float32 arrays with one scale per row of
    a / per row of b) the result is float32 ``a_scale[i] * b_scale[j] * dot[i, j]``, computed
    as ``float32(a_scale[i] * b_scale[j]) * float32(dot)`` (a missing scale counts as 1).
    out: optional preallocated C-contiguous array of the result's dtype and shape.
    Runs on the worker pool with the GIL released.
    """
    if isinstance(b, Int8Matrix):
        packed = b
    else:
        b = as_array(b, "b", np.int8, ndim=2)
        _check_k(b.shape[1])
        packed = Int8Matrix(b)
    n, k = packed.shape
    a = as_array(a, "a", np.int8, ndim=2)
    if a.shape[1] != k:
        raise ValueError(f"a: has {a.shape[1]} columns but b has k = {k}")
    m = a.shape[0]
    scaled = a_scale is not None or b_scale is not None
    dtype = np.float32 if scaled else np.int32
    if out is None:
        out = np.empty((m, n), dtype=dtype)
    else:
        if not isinstance(out, np.ndarray):
            raise TypeError(f"out: expected a numpy array, got {type(out).__name__}")
        if out.dtype != dtype:
            raise TypeError(f"out: expected dtype {np.dtype(dtype).name}, got {out.dtype}")
        if out.shape != (m, n):
            raise ValueError(f"out: expected shape {(m, n)}, got {out.shape}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out: must be a writeable C-contiguous array")
    if m == 0 or n == 0:
        return out
    if k == 0:
        out[...] = 0
        return out
    if not scaled:
        _core.int8_gemm(a, packed._packed, out)
    else:
        sa = None if a_scale is None else _scale_vector(a_scale, m, "a_scale")
        sb = None if b_scale is None else _scale_vector(b_scale, n, "b_scale")
        _core.int8_gemm_f32(a, packed._packed, sa, sb, None, out)
    return out


# ----------------------------------------------------------------------------------------
# (end of int8)
# ----------------------------------------------------------------------------------------
