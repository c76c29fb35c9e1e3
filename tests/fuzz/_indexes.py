"""The index harnesses' common body: load with and without mmap (and verify), then use it."""
from __future__ import annotations

import os

import numpy as np

MAX_QUERY_DIM = 1 << 14  # the harness's own query, not the loader's allocation


def write(path, data: bytes) -> None:
    """Replaces `path` by renaming (a map of the previous contents stays valid: truncating a
    mapped file in place would be SIGBUS, the nature of mmap)."""
    tmp = str(path) + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def exercise(cls, path, query, mmap_modes=((True, None), (True, True), (False, None))) -> None:
    """Loads `path` as `cls` in each (mmap, verify) mode; a load that succeeds is verified and
    searched with query(index) (None: no search)."""
    refusals = 0
    for mmap, verify in mmap_modes:
        try:
            index = cls.load(path, mmap=mmap, verify=verify)
        except ValueError:
            refusals += 1
            continue
        try:
            if hasattr(index, "verify"):
                index.verify()
        except ValueError:
            pass  # a mapped file whose data fails its checksum: the index stays usable as read
        q = query(index)
        if q is not None:
            for k in (1, 5):
                index.search(q, k)
        del index
    if refusals:
        raise ValueError("refused")


def float_query(dim: int):
    if dim > MAX_QUERY_DIM:
        return None
    return np.linspace(-1.0, 1.0, dim, dtype=np.float32)[None, :]
