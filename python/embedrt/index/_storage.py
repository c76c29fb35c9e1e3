"""Append-only row storage with geometric growth, shared by the flat indexes."""
from __future__ import annotations

import numpy as np


def append_rows(buf: np.ndarray, n: int, rows: np.ndarray, min_capacity: int = 1024) -> np.ndarray:
    """Writes `rows` after the first `n` rows of `buf` and returns the buffer holding all
    ``n + len(rows)`` rows: `buf` itself when it has room and is writable, else a new buffer of
    at least twice the capacity (so many small appends stay linear overall). A read-only buffer
    (e.g. a memory-mapped file) is copied, never written."""
    need = n + rows.shape[0]
    if need > buf.shape[0] or not buf.flags.writeable:
        capacity = max(need, 2 * buf.shape[0], min_capacity)
        grown = np.empty((capacity,) + buf.shape[1:], dtype=buf.dtype)
        grown[:n] = buf[:n]
        buf = grown
    buf[n:need] = rows
    return buf
