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



# ----------------------------------------------------------------------------------------
# (end of int8)
# ----------------------------------------------------------------------------------------
