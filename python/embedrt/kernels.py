"""Thin, checked wrappers over the native kernels (numpy in, numpy out).

Every function's arguments are checked, and bad ones raise TypeError or ValueError naming the
argument; the native call releases the GIL. One layer checks each thing: ``_core`` (the C++
bindings, safe on their own) checks what guards memory, such as code widths and the int8 k
limit, in the names these wrappers use; the wrappers convert (dtypes, 1-D rows) and check
only what ``_core`` does not see.
"""
from __future__ import annotations

import numpy as np

from . import _core
from ._checks import as_array, as_int

# ----------------------------------------------------------------------------------------
# bit codes: pack_bits, unpack_bits, hamming, hamming_topk, binary_matmul
# ----------------------------------------------------------------------------------------


def _codes(x, name: str):
    """uint8 codes as a C-contiguous 2-D array; a 1-D input is one row."""
    return as_array(x, name, np.uint8, ndim=2, allow_1d=True)


def _pair(a, b, an: str, bn: str):
    """Two sets of codes (their widths are checked by _core, in these names)."""
    return _codes(a, an), _codes(b, bn)


def pack_bits(x) -> np.ndarray:
    """Binarizes embeddings by sign and packs them, 8 dimensions per byte.

    Bit = ``x > 0``, packed MSB-first along the last axis, unused low bits of the last byte
    zero: the same bytes as ``np.packbits(x > 0, axis=-1)`` and as sentence-transformers'
    ``quantize_embeddings(..., precision="ubinary")``.

    x: float16, float32, float64 or bool array with at least one dimension; ``[..., d]``
    gives uint8 ``[..., ceil(d / 8)]`` (a 1-D input gives one 1-D code). NaN raises
    ValueError; integer arrays raise TypeError.
    """
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
    if x.dtype.kind not in "fb" or x.dtype.itemsize not in (1, 2, 4, 8):
        raise TypeError(f"x: expected a float16/32/64 or bool array, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError("x: expected at least a 1-D array, got a scalar")
    shape = x.shape
    d = shape[-1]
    if x.dtype == np.float16:
        x = x.astype(np.float32)  # exact: every float16 is a float32 with the same sign
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    flat = np.ascontiguousarray(x).reshape(rows, d)
    out = _core.pack_bits(flat)
    return out.reshape(shape[:-1] + ((d + 7) // 8,))


def unpack_bits(codes, d: int) -> np.ndarray:
    """The inverse of pack_bits: uint8 codes ``[..., B]`` -> 0/1 uint8 ``[..., d]``.

    Same as ``np.unpackbits(codes, axis=-1, count=d)``; d must be in [0, 8 * B].
    """
    if not isinstance(codes, np.ndarray):
        raise TypeError(f"codes: expected a numpy array of dtype uint8, got {type(codes).__name__}")
    if codes.dtype != np.uint8:
        raise TypeError(f"codes: expected dtype uint8, got {codes.dtype}")
    if codes.ndim < 1:
        raise ValueError("codes: expected at least a 1-D array, got a scalar")
    d = as_int(d, "d", minimum=0)
    shape = codes.shape
    if d > 8 * shape[-1]:
        raise ValueError(f"d must be <= 8 * code width ({8 * shape[-1]}), got {d}")
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    flat = np.ascontiguousarray(codes).reshape(rows, shape[-1])
    return _core.unpack_bits(flat, d).reshape(shape[:-1] + (d,))


def hamming(a, b, out=None) -> np.ndarray:
    """All-pairs Hamming distances between packed codes.

    a: uint8 ``[m, B]``, b: uint8 ``[n, B]`` (1-D inputs are one row; any width B >= 1).
    Returns uint32 ``[m, n]`` with ``out[i, j] = popcount(a[i] ^ b[j])``. Threaded.
    out: optional writeable C-contiguous uint32 ``[m, n]`` array to fill (and return).
    """
    a, b = _pair(a, b, "a", "b")
    if out is not None:
        if not isinstance(out, np.ndarray) or out.dtype != np.uint32:
            raise TypeError("out: expected a numpy array of dtype uint32")
        if out.shape != (a.shape[0], b.shape[0]):
            raise ValueError(f"out: expected shape {(a.shape[0], b.shape[0])}, got {out.shape}")
        if not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError("out: must be a writeable, C-contiguous array")
    return _core.hamming(a, b, 8 * a.shape[1], out)


def hamming_topk(queries, codes, k: int):
    """The k nearest codes of each query by Hamming distance (exact).

    queries: uint8 ``[m, B]``; codes: uint8 ``[n, B]``. Returns ``(distances, ids)``:
    int32 and int64 arrays ``[m, k']`` with ``k' = min(k, n)``, each row by ascending
    distance, ties broken by the smaller id. The result does not depend on the thread count
    or the ISA level. Threaded over queries and, for few queries, over blocks of codes.
    """
    queries, codes = _pair(queries, codes, "queries", "codes")
    k = as_int(k, "k", minimum=1)
    return _core.hamming_topk(queries, codes, min(k, max(codes.shape[0], 1)), 8 * queries.shape[1])


def binary_matmul(a, b, nbits: int | None = None) -> np.ndarray:
    """Dot products of codes read as +/-1 vectors (bit 1 -> +1, bit 0 -> -1).

    Uses the first ``nbits`` bits of each code (default: all ``8 * B``):
    ``out[i, j] = nbits - 2 * hamming(a[i][:nbits], b[j][:nbits])``, int32 ``[m, n]``.
    nbits must be in [1, 8 * B].
    """
    a, b = _pair(a, b, "a", "b")
    nbits = 8 * a.shape[1] if nbits is None else as_int(nbits, "nbits", minimum=1)
    if nbits > 8 * a.shape[1]:
        raise ValueError(f"nbits must be <= 8 * code width ({8 * a.shape[1]}), got {nbits}")
    return _core.binary_matmul(a, b, nbits)


# ----------------------------------------------------------------------------------------
# (end of bit codes)
# ----------------------------------------------------------------------------------------




# ----------------------------------------------------------------------------------------
# int8: int8_matmul, Int8Matrix, pack_int8
# ----------------------------------------------------------------------------------------

#: Largest inner dimension k of an exact int8 product (int32 accumulators cannot overflow).
INT8_MAX_K = int(_core.INT8_MAX_K)


class Int8Matrix:
    """An int8 matrix ``B[n, k]`` packed once for repeated exact products ``A . B^T``.

    ``Int8Matrix(b).matmul(a)`` equals ``int8_matmul(a, b)``; packing (a reordering of B for
    the SIMD kernels, plus per-row sums) is done once here instead of on every call.
    """

    __slots__ = ("_packed", "_shape")

    def __init__(self, b):
        b = as_array(b, "b", np.int8, ndim=2)
        self._packed = _core.int8_pack(b)  # raises when k exceeds INT8_MAX_K
        self._shape = (int(b.shape[0]), int(b.shape[1]))

    @property
    def shape(self) -> tuple:
        """(n, k) of the packed matrix."""
        return self._shape

    @property
    def nbytes(self) -> int:
        """Bytes held by the packed form."""
        return int(self._packed.nbytes)

    @property
    def packed(self):
        """The packed form (``_core.Int8Packed``), for the ``_core`` entry points that take
        more than ``matmul`` does (``int8_gemm`` on uint8 codes a + 128 or a column range,
        ``int8_gemm_f32`` with a bias)."""
        return self._packed

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
