"""Int8Index: exact inner-product search over symmetric int8 vectors, and the int8 store it
shares with the two-stage :class:`embedrt.Index` (see :mod:`embedrt.index`)."""
from __future__ import annotations

import threading

import numpy as np

from .. import _core, _fileformat
from .._checks import as_array, as_int, as_k, float_rows
from ..quantize import quantize, symmetric_rows
from ._storage import append_rows

KIND = "embedrt.Int8Index"
VERSION = 1


def query_q16(queries: np.ndarray, dim: int):
    """Queries as 16-bit fixed point rows (padded to the kernel stride) and their scales.

    float32 queries: ``q_scale = float32(max|q|) / qmax`` and ``q16 = rint(q / q_scale)``
    with ``qmax = _core.int8_q16_max(dim)`` (32767 up to dim 512), so the query keeps about
    15 bits and the integer dot products with int8 vectors are exact
    (:func:`embedrt.quantize.symmetric_rows`; a zero query gets scale 0 and scores 0). int8
    queries are used as they are (scale 1).
    """
    m = queries.shape[0]
    stride = int(_core.int8_q16_stride(dim))
    q16 = np.zeros((m, stride), np.int16)
    if queries.dtype == np.int8:
        q16[:, :dim] = queries
        return q16, np.ones(m, np.float32)
    q16[:, :dim], scale = symmetric_rows(queries, _core.int8_q16_max(dim), np.int16)
    return q16, scale


class Int8Store:
    """Growable int8 rows + one float32 scale per row (capacity doubling; mmap-friendly)."""

    def __init__(self, dim: int):
        self.dim = dim
        self._lock = threading.Lock()
        # (codes capacity rows, scales capacity, rows in use), published together
        self._rows = (np.zeros((0, dim), np.int8), np.zeros(0, np.float32), 0)

    @classmethod
    def from_arrays(cls, codes, scales):
        s = cls(codes.shape[1])
        s._rows = (codes, scales, codes.shape[0])
        return s

    @property
    def n(self) -> int:
        return self._rows[2]

    def snapshot(self, limit=None):
        """(codes, scales) of the rows in use (the first `limit` of them when given)."""
        c, s, n = self._rows
        if limit is not None:
            n = min(n, limit)
        return c[:n], s[:n]

    @property
    def codes(self) -> np.ndarray:
        return self.snapshot()[0]

    @property
    def scales(self) -> np.ndarray:
        return self.snapshot()[1]

    def append(self, codes: np.ndarray, scales: np.ndarray) -> int:
        """Appends rows; returns the id of the first one."""
        with self._lock:
            c, s, n = self._rows
            # written past the rows that searches read; a read-only (mapped) buffer is copied
            c = append_rows(c, n, codes, min_capacity=64)
            s = append_rows(s, n, scales, min_capacity=64)
            self._rows = (c, s, n + codes.shape[0])
            return n

    def search(self, queries: np.ndarray, k: int, limit=None):
        codes, scales = self.snapshot(limit)
        q16, qs = query_q16(queries, self.dim)
        return _core.int8_search(q16, qs, codes, scales, k)

    def rescore(self, queries: np.ndarray, candidates: np.ndarray, k: int, limit=None):
        codes, scales = self.snapshot(limit)
        q16, qs = query_q16(queries, self.dim)
        return _core.int8_rescore(q16, qs, codes, scales, candidates, k)

    def reconstruct(self, ids) -> np.ndarray:
        codes, scales = self.snapshot()
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids: expected integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= codes.shape[0]):
            raise IndexError(f"ids: out of range for an index of {codes.shape[0]} vectors")
        return codes[ids].astype(np.float32) * scales[ids][..., None]


def check_store_arrays(path, codes, scales, dim):
    if codes.dtype != np.int8 or codes.ndim != 2 or codes.shape[1] != dim:
        raise ValueError(f"{path}: int8 codes section has dtype {codes.dtype} and shape {codes.shape}, "
                         f"expected int8 [n, {dim}]")
    if scales.dtype != np.float32 or scales.shape != (codes.shape[0],):
        raise ValueError(f"{path}: scales section has shape {scales.shape}, expected ({codes.shape[0]},)")
    # Read even when mapped (4 bytes a vector): a NaN or negative scale would rank first.
    bad = ~(np.isfinite(scales) & (scales >= 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"{path}: the scale of vector {i} is {scales[i]!r}; scales must be finite "
                         "and >= 0 (the file is damaged)")


class Int8Index:
    """Exact inner-product search over int8 vectors with one float32 scale each.

    ``add(float_embeddings)`` stores them as symmetric int8 (``quantize(x, "int8_sym")``:
    4 bytes of scale per vector plus one byte per dimension). ``search(queries, k)`` returns
    ``(scores float32 [m, k], ids int64 [m, k])``, scores descending, ties broken by the
    smaller id, deterministic and identical on every ISA level.

    Scoring: a float32 query is not quantized to int8; it is kept in 16-bit fixed point
    (about 15 bits, see ``query_q16``), so that the score
    ``q_scale * scale[i] * dot(q16, codes[i])`` is an exact integer product up to the two
    scales: the error is that of the int8 vectors alone, and the scan (one pass over the int8
    rows, threaded over blocks, with a running top-k) stays bound by memory bandwidth.
    int8 queries are accepted too and scored as ``scale[i] * dot(q, codes[i])``.
    """

    def __init__(self, dim: int):
        self._dim = as_int(dim, "dim", minimum=1)
        self._store = Int8Store(self._dim)
        self._loaded = None

    @property
    def dim(self) -> int:
        return self._dim

    def __len__(self) -> int:
        return self._store.n

    @property
    def ntotal(self) -> int:
        return self._store.n

    @property
    def codes(self) -> np.ndarray:
        """The int8 codes [n, dim] (read-only view)."""
        v = self._store.codes.view()
        v.flags.writeable = False
        return v

    @property
    def scales(self) -> np.ndarray:
        """The float32 scale of each vector [n] (read-only view)."""
        v = self._store.scales.view()
        v.flags.writeable = False
        return v

    @property
    def nbytes(self) -> int:
        """Bytes of stored data (codes and scales)."""
        return self._store.n * (self._dim + 4)

    def __repr__(self) -> str:
        return f"Int8Index(dim={self._dim}, ntotal={len(self)})"

    def add(self, embeddings) -> np.ndarray:
        """Quantizes float embeddings [n, dim] (or one [dim]) and appends them; returns their ids."""
        x = float_rows(embeddings, "embeddings", self._dim)
        codes, scales = quantize(x, "int8_sym")
        start = self._store.append(codes, scales)
        return np.arange(start, start + x.shape[0], dtype=np.int64)

    def search(self, queries, k: int):
        """Top-k by inner product: ``(scores float32 [m, k'], ids int64 [m, k'])``, k' = min(k, len)."""
        q = self._queries(queries)
        n = self._store.n
        k = as_k(k, n)
        if k == 0 or q.shape[0] == 0:
            return np.zeros((q.shape[0], k), np.float32), np.zeros((q.shape[0], k), np.int64)
        return self._store.search(q, k, limit=n)

    def _queries(self, queries) -> np.ndarray:
        if isinstance(queries, np.ndarray) and queries.dtype == np.int8:
            q = as_array(queries, "queries", np.int8, ndim=2, allow_1d=True)
            if q.shape[1] != self._dim:
                raise ValueError(f"queries: expected {self._dim} dimensions, got {q.shape[1]}")
            return q
        return float_rows(queries, "queries", self._dim)

    def reconstruct(self, ids) -> np.ndarray:
        """The stored approximation ``codes[ids] * scales[ids]`` as float32."""
        return self._store.reconstruct(ids)

    def verify(self) -> None:
        """Checks the checksums of a memory-mapped file this index was loaded from."""
        if self._loaded is not None:
            self._loaded.verify()

    def save(self, path) -> None:
        """Writes the index (embedrt container format, atomically)."""
        codes, scales = self._store.snapshot()
        _fileformat.write_file(path, KIND, VERSION, {"dim": self._dim, "ntotal": len(codes)},
                               {"codes": codes, "scales": scales})

    @classmethod
    def load(cls, path, mmap: bool = True, verify=None) -> "Int8Index":
        """Opens a saved index. With mmap=True the vectors stay on disk (paged in on use) and
        checksums are verified on ``verify()`` (or at once with verify=True); structure, sizes,
        the header checksum and the scales (finite, >= 0) are always checked at open."""
        f = _fileformat.read_file(path, KIND, VERSION, mmap=mmap, verify=verify)
        try:
            dim = as_int(f.meta["dim"], "dim", minimum=1)
            codes, scales = f.arrays["codes"], f.arrays["scales"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed Int8Index file ({e})") from None
        check_store_arrays(path, codes, scales, dim)
        index = cls(dim)
        index._store = Int8Store.from_arrays(codes, scales)
        index._loaded = f
        return index
