"""Precision conversions of embeddings, compatible with sentence-transformers.

``quantize(embeddings, precision)`` returns what ``sentence_transformers.quantize_embeddings``
returns for "float32", "int8", "uint8", "binary" and "ubinary" (bit for bit for the integer
and bit formats), plus:

- "float16": ``embeddings.astype(float16)``.
- "int8_sym": symmetric int8 with one float32 scale per vector; returns ``(codes, scales)``::

      scales[i] = float32(max_j |x[i, j]|) / 127          (float32 arithmetic)
      codes[i, j] = clip(rint(x[i, j] / scales[i]), -127, 127)   (round half to even)

  so that ``codes[i] * scales[i]`` approximates ``x[i]`` within ``scales[i] / 2`` per
  component. An all-zero vector gets scale 0 and codes 0. Codes never take the value -128.
"""
from __future__ import annotations

import numpy as np

# The precisions of Encoder.encode, the command line and the distributed jobs, by kind.
ENCODE_PRECISIONS = ("float32", "float16", "int8", "uint8", "binary", "ubinary")
FLOAT_PRECISIONS = ("float32", "float16")
INT_PRECISIONS = ("int8", "uint8")
BIT_PRECISIONS = ("binary", "ubinary")
# The precisions of quantize().
PRECISIONS = ENCODE_PRECISIONS + ("int8_sym",)


def _as_float(x, name: str) -> np.ndarray:
    if not isinstance(x, np.ndarray):
        if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor
            x = x.detach().cpu().float().numpy()
        else:
            x = np.asarray(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{name}: expected floating-point embeddings, got dtype {x.dtype}")
    if x.size and not np.isfinite(x).all():
        raise ValueError(f"{name}: contains NaN or infinity")
    return x


def quantize(embeddings, precision: str, ranges=None, calibration_embeddings=None):
    """Converts float embeddings [n, d] (or one vector [d]) to `precision`.

    precision: "float32", "float16", "int8", "uint8", "binary", "ubinary" or "int8_sym".

    int8 / uint8: each dimension's [min, max] range (from `ranges`, a [2, d] array, else from
    `calibration_embeddings`, else from the embeddings themselves) is cut into 255 steps, as
    sentence-transformers does (int8 = uint8 - 128). binary / ubinary: sign bits (value > 0),
    packed MSB-first; binary is ubinary - 128 as int8. int8_sym returns ``(codes, scales)``
    (see the module docstring).

    Raises TypeError for non-float input, ValueError for NaN/inf, an unknown precision, or
    int8 ranges that would have to come from a single embedding.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    x = _as_float(embeddings, "embeddings")
    if x.ndim not in (1, 2):
        raise ValueError(f"embeddings: expected a 1-D or 2-D array, got shape {x.shape}")

    if precision == "float32":
        return x.astype(np.float32)
    if precision == "float16":
        return x.astype(np.float16)
    if precision == "int8_sym":
        return _int8_sym(x)

    if x.ndim == 2 and x.shape[0] == 0:
        d = x.shape[1]
        if precision in ("int8", "uint8"):
            return np.zeros((0, d), dtype=np.int8 if precision == "int8" else np.uint8)
        return np.zeros((0, (d + 7) // 8), dtype=np.int8 if precision == "binary" else np.uint8)

    if precision in ("int8", "uint8"):
        if ranges is None:
            if calibration_embeddings is not None:
                cal = _as_float(calibration_embeddings, "calibration_embeddings")
                if cal.ndim != 2 or cal.shape[-1] != x.shape[-1] or cal.shape[0] == 0:
                    raise ValueError(f"calibration_embeddings: expected a non-empty [n, {x.shape[-1]}] "
                                     f"array, got shape {cal.shape}")
            else:
                if x.ndim == 1 or x.shape[0] == 1:
                    raise ValueError(f"Cannot compute {precision} quantization ranges from a single "
                                     "embedding; pass `ranges` or `calibration_embeddings`")
                cal = x
            ranges = np.vstack((np.min(cal, axis=0), np.max(cal, axis=0)))
        else:
            ranges = _as_float(ranges, "ranges")
            if ranges.shape != (2, x.shape[-1]):
                raise ValueError(f"ranges: expected shape (2, {x.shape[-1]}), got {ranges.shape}")
        ranges = ranges.astype(np.float32, copy=False)
        starts = ranges[0, :]
        steps = (ranges[1, :] - starts) / 255
        steps = np.where(steps == 0, 1, steps)
        q = np.clip(np.floor((x - starts) / steps), 0, 255)
        if precision == "uint8":
            return q.astype(np.uint8)
        return (q - 128).astype(np.int8)

    from .kernels import pack_bits

    bits = pack_bits(x)  # bit = x > 0, MSB-first, as np.packbits(x > 0, axis=-1)
    if precision == "ubinary":
        return bits
    return (bits.astype(np.int16) - 128).astype(np.int8)


def symmetric_rows(x: np.ndarray, qmax, dtype):
    """Symmetric per-row quantization of float32 rows ``x [n, d]``, the one rule behind
    "int8_sym" and the fixed-point queries of the int8 indexes::

        scales[i] = float32(max_j |x[i, j]|) / qmax          (float32 arithmetic)
        codes[i, j] = clip(rint(x[i, j] / scales[i]), -qmax, qmax)   (round half to even)

    A zero row gets scale 0 and codes 0 (as the int8 kernels expect: its scores are 0).
    Returns ``(codes [n, d] of dtype, scales float32 [n])``.
    """
    qmax = np.float32(qmax)
    n, d = x.shape
    if d == 0:
        return np.zeros((n, 0), dtype), np.zeros(n, np.float32)
    amax = np.max(np.abs(x), axis=1)
    scales = (amax / qmax).astype(np.float32)
    safe = np.where(scales > 0, scales, np.float32(1))
    with np.errstate(over="ignore"):
        q = np.rint(x / safe[:, None])
    return np.clip(q, -qmax, qmax).astype(dtype), scales


def _int8_sym(x: np.ndarray):
    x32 = np.asarray(x, dtype=np.float32)
    single = x32.ndim == 1
    codes, scales = symmetric_rows(x32.reshape(1, -1) if single else x32, 127, np.int8)
    if single:
        return codes[0], scales[0]
    return codes, scales
