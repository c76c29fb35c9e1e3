"""Flat exact indexes over compact embeddings, with files that can be memory-mapped.

Every index file uses embedrt's container format (embedrt._fileformat): a magic, a format
version, sizes and checksums. Nothing is unpickled.

Threads: an index may be shared. ``search`` calls run concurrently with each other and with
``add``; ``add`` calls are serialized by a lock of the index. A search sees the rows added
before it started (or a later state), never a partly added batch. Ids of rows added by
concurrent ``add`` calls follow the order in which the calls took the lock.
"""
from __future__ import annotations

import threading

import numpy as np

from . import _core
from . import _fileformat
from ._checks import as_array, as_float32, as_int
from ._storage import append_rows

# ----------------------------------------------------------------------------------------
# BinaryIndex
# ----------------------------------------------------------------------------------------


class BinaryIndex:
    """Exact (flat) nearest-neighbour search over binary codes by Hamming distance.

    Codes are packed bits as produced by :func:`embedrt.pack_bits` (or sentence-transformers'
    ``ubinary`` precision): uint8 arrays ``[n, ceil(nbits / 8)]``, MSB-first. Ids are the
    insertion order (0, 1, 2, ...).

    Only the first ``nbits`` bits of a code count. When ``nbits`` is not a multiple of 8, the
    unused low bits of the last byte are ignored: every distance masks them, and stored codes
    are kept (and returned by :meth:`reconstruct`) exactly as given.

    Files: :meth:`save` writes embedrt's checksummed container (kind ``"BinaryIndex"``).
    ``BinaryIndex.load(path)`` memory-maps the codes by default, so opening a large index does
    not read it; the checksums are then verified on request (:meth:`verify`, or
    ``load(path, verify=True)``). ``load(path, mmap=False)`` reads the codes into memory and
    verifies them at once. A memory-mapped index can be searched in place and grows by
    copying its codes into memory on the first :meth:`add`.

    Example::

        index = embedrt.BinaryIndex(384)
        index.add(embedrt.pack_bits(doc_embeddings))
        distances, ids = index.search(embedrt.pack_bits(query_embeddings), k=10)
    """

    _KIND = "BinaryIndex"
    _VERSION = 1

    def __init__(self, nbits: int):
        nbits = as_int(nbits, "nbits", minimum=1)
        self._nbits = nbits
        self._code_size = (nbits + 7) // 8
        self._lock = threading.Lock()  # serializes add/reset
        # (capacity rows, rows in use), published together so a search never pairs a row count
        # with a buffer that does not hold that many rows
        self._rows = (np.empty((0, self._code_size), dtype=np.uint8), 0)
        self._file = None    # the file this index was loaded from with mmap=True (for verify())
        self._mapped = False  # the codes are still the file's memory map

    @property
    def _codes(self) -> np.ndarray:
        return self._rows[0]

    @property
    def _n(self) -> int:
        return self._rows[1]

    # -- properties -----------------------------------------------------------------------
    @property
    def nbits(self) -> int:
        """Bits per code that count in distances."""
        return self._nbits

    @property
    def code_size(self) -> int:
        """Bytes per code: ceil(nbits / 8)."""
        return self._code_size

    @property
    def ntotal(self) -> int:
        """Number of codes in the index."""
        return self._n

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        mapped = ", memory-mapped" if self._mapped else ""
        return f"BinaryIndex(nbits={self._nbits}, ntotal={self._n}{mapped})"

    @property
    def codes(self) -> np.ndarray:
        """The stored codes, uint8 ``[ntotal, code_size]`` (a read-only view)."""
        buf, n = self._rows
        view = buf[:n].view(np.ndarray)
        view.flags.writeable = False
        return view

    # -- building -------------------------------------------------------------------------
    def _check_codes(self, x, name: str) -> np.ndarray:
        x = as_array(x, name, np.uint8, ndim=2, allow_1d=True)
        if x.shape[1] != self._code_size:
            raise ValueError(f"{name}: expected codes of {self._code_size} bytes (nbits={self._nbits}), "
                             f"got {x.shape[1]} bytes per row")
        return x

    def add(self, codes) -> None:
        """Appends codes (uint8 ``[n, code_size]``; a 1-D array is one code).

        Storage grows geometrically, so adding in many small batches stays linear overall.
        """
        codes = self._check_codes(codes, "codes")
        n = codes.shape[0]
        if n == 0:
            return
        with self._lock:
            buf, have = self._rows
            grown = append_rows(buf, have, codes)  # writes only past the rows searches read
            if grown is not buf:
                self._mapped = False  # copied into memory; verify() still checks the file
            self._rows = (grown, have + n)

    def reset(self) -> None:
        """Removes every code."""
        with self._lock:
            self._rows = (np.empty((0, self._code_size), dtype=np.uint8), 0)
            self._file = None
            self._mapped = False

    def reconstruct(self, ids) -> np.ndarray:
        """The stored codes of `ids` (an int or an array of ints), uint8 ``[len(ids), code_size]``
        (or ``[code_size]`` for one int). Raises IndexError for ids outside [0, ntotal)."""
        scalar = isinstance(ids, (int, np.integer)) and not isinstance(ids, bool)
        arr = np.asarray(ids)
        if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype == np.float64):
            raise TypeError(f"ids: expected integers, got dtype {arr.dtype}")
        arr = arr.astype(np.int64, copy=False).reshape(-1)
        buf, n = self._rows
        if arr.size and (arr.min() < 0 or arr.max() >= n):
            raise IndexError(f"ids must be in [0, {n}), got values in [{arr.min()}, {arr.max()}]")
        out = np.array(buf[:n][arr], dtype=np.uint8)
        return out[0] if scalar else out

    # -- search ---------------------------------------------------------------------------
    def search(self, queries, k: int):
        """The k nearest stored codes of each query by Hamming distance over the first nbits bits.

        queries: uint8 ``[m, code_size]`` (a 1-D array is one query). Returns
        ``(distances, ids)``: int32 and int64 ``[m, k']`` with ``k' = min(k, ntotal)``,
        ascending distance, ties broken by the smaller id (an empty index gives ``[m, 0]``).
        Exact and deterministic on every ISA level and thread count.
        """
        queries = self._check_codes(queries, "queries")
        k = as_int(k, "k", minimum=1)
        return self._search(queries, k, None)

    def _search(self, queries: np.ndarray, k: int, limit):
        """search() over the first `limit` rows (all rows when None)."""
        buf, n = self._rows
        if limit is not None:
            n = min(n, limit)
        m = queries.shape[0]
        if n == 0 or m == 0:
            kk = min(k, n)
            return np.zeros((m, kk), dtype=np.int32), np.zeros((m, kk), dtype=np.int64)
        return _core.hamming_topk(queries, buf[:n], min(k, n), self._nbits)

    # -- files ----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Writes the index to `path` atomically (embedrt container, kind "BinaryIndex")."""
        buf, n = self._rows
        _fileformat.write_file(path, self._KIND, self._VERSION,
                               {"nbits": self._nbits, "ntotal": n},
                               {"codes": buf[:n]})

    @classmethod
    def load(cls, path, mmap: bool = True, verify=None) -> "BinaryIndex":
        """Opens an index written by :meth:`save`.

        mmap=True (default) maps the codes without reading them; their checksum is verified
        when ``verify=True`` is passed or :meth:`verify` is called. mmap=False reads and
        verifies them. A file that is not a BinaryIndex, is truncated, or whose header or
        (verified) data is altered raises ValueError.
        """
        f = _fileformat.read_file(path, cls._KIND, cls._VERSION, mmap=mmap, verify=verify)
        meta = f.meta if isinstance(f.meta, dict) else {}
        nbits = meta.get("nbits")
        if isinstance(nbits, bool) or not isinstance(nbits, int) or nbits < 1:
            raise ValueError(f"{path}: malformed BinaryIndex header (nbits={nbits!r})")
        codes = f.arrays.get("codes")
        size = (nbits + 7) // 8
        if codes is None or codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] != size:
            raise ValueError(f"{path}: malformed BinaryIndex (expected a uint8 'codes' section "
                             f"of {size} bytes per row)")
        if meta.get("ntotal", codes.shape[0]) != codes.shape[0]:
            raise ValueError(f"{path}: malformed BinaryIndex (ntotal does not match the codes)")
        index = cls(nbits)
        index._rows = (codes, codes.shape[0])
        index._file = f if mmap else None
        index._mapped = bool(mmap) and index._n > 0
        return index

    def verify(self) -> None:
        """Checks the file this index was memory-mapped from against its checksums
        (ValueError if they differ), also after codes were added. A no-op for an index built
        in memory or loaded with mmap=False (verified when loaded)."""
        if self._file is not None and not self._file.verified:
            self._file.verify()


# ----------------------------------------------------------------------------------------
# (end of BinaryIndex)
# ----------------------------------------------------------------------------------------




# ----------------------------------------------------------------------------------------
# Int8Index, Index (two-stage search)
# ----------------------------------------------------------------------------------------

from .quantize import quantize as _quantize

_INT8_KIND = "embedrt.Int8Index"
_INT8_VERSION = 1
_INDEX_KIND = "embedrt.Index"
_INDEX_VERSION = 1


def _query_q16(queries: np.ndarray, dim: int):
    """Queries as 16-bit fixed point rows (padded to the kernel stride) and their scales.

    float32 queries: ``q_scale = float32(max|q|) / qmax`` and ``q16 = rint(q / q_scale)``
    with ``qmax = _core.int8_q16_max(dim)`` (32767 up to dim 512), so the query keeps about
    15 bits and the integer dot products with int8 vectors are exact. int8 queries are used
    as they are (scale 1).
    """
    m = queries.shape[0]
    stride = int(_core.int8_q16_stride(dim))
    q16 = np.zeros((m, stride), np.int16)
    if queries.dtype == np.int8:
        q16[:, :dim] = queries
        return q16, np.ones(m, np.float32)
    qmax = np.float32(_core.int8_q16_max(dim))
    amax = np.max(np.abs(queries), axis=1) if dim else np.zeros(m, np.float32)
    scale = (amax / qmax).astype(np.float32)
    safe = np.where(scale > 0, scale, np.float32(1))
    q16[:, :dim] = np.clip(np.rint(queries / safe[:, None]), -qmax, qmax).astype(np.int16)
    return q16, scale


def _check_k(k, n: int) -> int:
    k = as_int(k, "k", minimum=1)
    return min(k, n)


def _float_rows(x, name: str, dim: int) -> np.ndarray:
    if isinstance(x, np.ndarray) and x.dtype.kind in "iub":
        raise TypeError(f"{name}: expected float embeddings, got dtype {x.dtype}")
    x = as_float32(x, name, ndim=2, allow_1d=True)
    if x.shape[1] != dim:
        raise ValueError(f"{name}: expected {dim} dimensions, got {x.shape[1]}")
    return x


class _Int8Store:
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
            need = n + codes.shape[0]
            if need > c.shape[0] or not c.flags.writeable or not s.flags.writeable:
                cap = max(need, 2 * c.shape[0], 64)
                c2 = np.empty((cap, self.dim), np.int8)
                s2 = np.empty(cap, np.float32)
                c2[:n] = c[:n]
                s2[:n] = s[:n]
                c, s = c2, s2
            c[n:need] = codes  # past the rows that searches read
            s[n:need] = scales
            self._rows = (c, s, need)
            return n

    def search(self, queries: np.ndarray, k: int, limit=None):
        codes, scales = self.snapshot(limit)
        q16, qs = _query_q16(queries, self.dim)
        return _core.int8_search(q16, qs, codes, scales, k)

    def rescore(self, queries: np.ndarray, candidates: np.ndarray, k: int, limit=None):
        codes, scales = self.snapshot(limit)
        q16, qs = _query_q16(queries, self.dim)
        return _core.int8_rescore(q16, qs, codes, scales, candidates, k)

    def reconstruct(self, ids) -> np.ndarray:
        codes, scales = self.snapshot()
        ids = np.asarray(ids)
        if ids.dtype.kind not in "iu":
            raise TypeError(f"ids: expected integers, got dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= codes.shape[0]):
            raise IndexError(f"ids: out of range for an index of {codes.shape[0]} vectors")
        return codes[ids].astype(np.float32) * scales[ids][..., None]


def _empty_result(m: int):
    return np.zeros((m, 0), np.float32), np.zeros((m, 0), np.int64)


def _check_store_arrays(path, codes, scales, dim):
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
    (about 15 bits, see ``_query_q16``), so that the score
    ``q_scale * scale[i] * dot(q16, codes[i])`` is an exact integer product up to the two
    scales: the error is that of the int8 vectors alone, and the scan (one pass over the int8
    rows, threaded over blocks, with a running top-k) stays bound by memory bandwidth.
    int8 queries are accepted too and scored as ``scale[i] * dot(q, codes[i])``.
    """

    def __init__(self, dim: int):
        self._dim = as_int(dim, "dim", minimum=1)
        self._store = _Int8Store(self._dim)
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
        x = _float_rows(embeddings, "embeddings", self._dim)
        codes, scales = _quantize(x, "int8_sym")
        start = self._store.append(codes, scales)
        return np.arange(start, start + x.shape[0], dtype=np.int64)

    def search(self, queries, k: int):
        """Top-k by inner product: ``(scores float32 [m, k'], ids int64 [m, k'])``, k' = min(k, len)."""
        q = self._queries(queries)
        n = self._store.n
        k = _check_k(k, n)
        if k == 0 or q.shape[0] == 0:
            return np.zeros((q.shape[0], k), np.float32), np.zeros((q.shape[0], k), np.int64)
        return self._store.search(q, k, limit=n)

    def _queries(self, queries) -> np.ndarray:
        if isinstance(queries, np.ndarray) and queries.dtype == np.int8:
            q = as_array(queries, "queries", np.int8, ndim=2, allow_1d=True)
            if q.shape[1] != self._dim:
                raise ValueError(f"queries: expected {self._dim} dimensions, got {q.shape[1]}")
            return q
        return _float_rows(queries, "queries", self._dim)

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
        _fileformat.write_file(path, _INT8_KIND, _INT8_VERSION, {"dim": self._dim, "ntotal": len(codes)},
                               {"codes": codes, "scales": scales})

    @classmethod
    def load(cls, path, mmap: bool = True, verify=None) -> "Int8Index":
        """Opens a saved index. With mmap=True the vectors stay on disk (paged in on use) and
        checksums are verified on ``verify()`` (or at once with verify=True); structure, sizes,
        the header checksum and the scales (finite, >= 0) are always checked at open."""
        f = _fileformat.read_file(path, _INT8_KIND, _INT8_VERSION, mmap=mmap, verify=verify)
        try:
            dim = as_int(f.meta["dim"], "dim", minimum=1)
            codes, scales = f.arrays["codes"], f.arrays["scales"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed Int8Index file ({e})") from None
        _check_store_arrays(path, codes, scales, dim)
        index = cls(dim)
        index._store = _Int8Store.from_arrays(codes, scales)
        index._loaded = f
        return index


# -- coarse stages of the two-stage Index --------------------------------------------------
# A coarse stage stores compact codes and returns candidate ids for float queries. It has
#   name, nbytes_per_vector, add(x_float32), candidates(q_float32, c) -> (ids [m, c] int64,
#   scores [m, c] float32, descending), arrays() -> {name: array}, meta() -> dict (kept in
#   the file's header), and a from_arrays(path, dim, arrays, meta) classmethod. Kinds are
#   registered in _COARSE.


class _BinaryCoarse:
    """Sign bits (quantize 'ubinary') in a :class:`BinaryIndex`, searched by Hamming distance.

    Score: ``dim - 2 * hamming``, the inner product of the +-1 sign vectors."""

    name = "binary"

    def __init__(self, dim: int):
        self.dim = dim
        self._index = BinaryIndex(dim)
        self.nbytes_per_vector = self._index.code_size

    @property
    def codes(self) -> np.ndarray:
        return self._index.codes

    def add(self, x: np.ndarray) -> None:
        self._index.add(_quantize(x, "ubinary"))

    def candidates(self, q: np.ndarray, c: int, limit=None):
        dist, ids = self._index._search(_quantize(q, "ubinary"), c, limit)
        return ids, (self.dim - 2 * dist).astype(np.float32)

    def arrays(self) -> dict:
        return {"binary_codes": self.codes}

    def meta(self) -> dict:
        return {}

    @classmethod
    def from_arrays(cls, path, dim: int, arrays: dict, meta: dict):
        s = cls(dim)
        codes = arrays.get("binary_codes")
        if codes is None or codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1:] != (s.nbytes_per_vector,):
            raise ValueError(f"{path}: missing or malformed binary codes section")
        s._index._rows = (codes, codes.shape[0])
        return s


class _SDCCoarse:
    """Multi-bit binary codes (BEBR residual bit planes, ``coarse_bits`` per dimension), searched
    by symmetric distance calculation; the binarizer is fitted on the first batch added.

    Score: the SDC inner product of the reconstructions (an approximate inner product)."""

    name = "sdc"

    def __init__(self, dim: int, bits: int = 2):
        from .sdc import SDCIndex

        self.dim = dim
        self._index = SDCIndex(dim, bits)
        self.nbytes_per_vector = self._index.bits * ((dim + 7) // 8)

    @property
    def codes(self) -> np.ndarray:
        return self._index.codes

    def add(self, x: np.ndarray) -> None:
        self._index.add(x)

    def candidates(self, q: np.ndarray, c: int, limit=None):
        scores, ids = self._index._search(q, c, limit)
        return ids, scores

    def arrays(self) -> dict:
        out = {"sdc_codes": self.codes}
        if self._index.binarizer.fitted:
            out.update({f"sdc_binarizer_{k}": v for k, v in self._index.binarizer._arrays().items()})
        return out

    def meta(self) -> dict:
        b = self._index.binarizer
        return {"coarse_bits": self._index.bits, "sdc_binarizer": b._meta() if b.fitted else None}

    @classmethod
    def from_arrays(cls, path, dim: int, arrays: dict, meta: dict):
        from .sdc import ResidualBinarizer, SDCIndex

        try:
            bits = int(meta["coarse_bits"])
            bmeta = meta["sdc_binarizer"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed SDC coarse stage description ({e})") from None
        s = cls(dim, bits)
        codes = arrays.get("sdc_codes")
        if codes is None or codes.dtype != np.uint8 or codes.shape[1:] != (bits, (dim + 7) // 8):
            raise ValueError(f"{path}: missing or malformed SDC codes section")
        binarizer = None
        if bmeta is not None:
            prefix = "sdc_binarizer_"
            parts = {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}
            binarizer = ResidualBinarizer._from_parts(path, bmeta, parts)
            if binarizer.dim != dim or binarizer.bits != bits:
                raise ValueError(f"{path}: SDC binarizer does not match the index (dim, bits)")
        elif codes.shape[0]:
            raise ValueError(f"{path}: SDC codes stored without their binarizer")
        s._index = SDCIndex(dim, bits, binarizer=binarizer)
        s._index._rows = (codes, int(codes.shape[0]))
        return s


_COARSE = {"binary": _BinaryCoarse, "sdc": _SDCCoarse}
_RESCORE = ("int8",)


class Index:
    """Two-stage search: compact binary codes find candidates, int8 vectors rescore them.

    ``Index(dim, coarse="binary", rescore="int8")``; ``add(float_embeddings)`` stores, per
    vector, its sign bits (as ``quantize(x, "ubinary")``, dim / 8 bytes) and its symmetric int8
    form (dim + 4 bytes). ``search(float_queries, k, rescore_multiplier=4)`` takes the
    ``k * rescore_multiplier`` nearest codes by Hamming distance (ties by smaller id), scores
    them with the float query against the int8 vectors (as :class:`Int8Index` does) and
    returns ``(scores float32 [m, k'], ids int64 [m, k'])``, descending, k' = min(k, len).

    ``coarse=None``: int8 only (an exact :class:`Int8Index` scan). ``rescore=None``: binary
    only; the score is then ``dim - 2 * hamming`` (the inner product of the +-1 sign vectors).

    ``coarse="sdc"``: the candidates come from multi-bit binary codes (``coarse_bits`` bits per
    dimension, BEBR residual bit planes scored by symmetric distance, see :class:`SDCIndex`);
    the binarizer is fitted on the first batch added, so make that batch representative.
    """

    def __init__(self, dim: int, coarse="binary", rescore="int8", coarse_bits: int = 2):
        self._dim = as_int(dim, "dim", minimum=1)
        if coarse is not None and coarse not in _COARSE:
            raise ValueError(f"coarse must be one of {sorted(_COARSE)} or None; got {coarse!r}")
        if rescore is not None and rescore not in _RESCORE:
            raise ValueError(f"rescore must be one of {list(_RESCORE)} or None; got {rescore!r}")
        if coarse is None and rescore is None:
            raise ValueError("coarse and rescore cannot both be None")
        if coarse == "sdc":
            self._coarse = _SDCCoarse(self._dim, coarse_bits)
        else:
            self._coarse = _COARSE[coarse](self._dim) if coarse else None
        self._int8 = _Int8Store(self._dim) if rescore else None
        self._lock = threading.Lock()
        # rows in use: published after both stages hold them, so a search limited to it
        # finds every row in both
        self._n = 0
        self._loaded = None

    @property
    def dim(self) -> int:
        return self._dim

    @property
    def coarse(self):
        return self._coarse.name if self._coarse else None

    @property
    def rescore(self):
        return "int8" if self._int8 is not None else None

    def __len__(self) -> int:
        return self._n

    @property
    def ntotal(self) -> int:
        return self._n

    @property
    def bytes_per_vector(self) -> int:
        b = self._coarse.nbytes_per_vector if self._coarse else 0
        return b + (self._dim + 4 if self._int8 is not None else 0)

    def __repr__(self) -> str:
        return f"Index(dim={self._dim}, coarse={self.coarse!r}, rescore={self.rescore!r}, ntotal={self._n})"

    def add(self, embeddings) -> np.ndarray:
        """Appends float embeddings [n, dim] (or one [dim]); returns their ids."""
        x = _float_rows(embeddings, "embeddings", self._dim)
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        codes = scales = None
        if self._int8 is not None:
            codes, scales = _quantize(x, "int8_sym")
        with self._lock:
            if self._coarse is not None:
                self._coarse.add(x)
            if self._int8 is not None:
                self._int8.append(codes, scales)
            start = self._n
            self._n = start + x.shape[0]
        return np.arange(start, start + x.shape[0], dtype=np.int64)

    def search(self, queries, k: int, rescore_multiplier: int = 4):
        """Top-k ``(scores float32 [m, k'], ids int64 [m, k'])`` for float queries."""
        q = _float_rows(queries, "queries", self._dim)
        n = self._n  # both stages hold at least n rows; the search reads those
        k = _check_k(k, n)
        mult = as_int(rescore_multiplier, "rescore_multiplier", minimum=1)
        m = q.shape[0]
        if k == 0 or m == 0:
            return np.zeros((m, k), np.float32), np.zeros((m, k), np.int64)
        if self._coarse is None:
            return self._int8.search(q, k, limit=n)
        if self._int8 is None:
            ids, scores = self._coarse.candidates(q, k, limit=n)
            return scores, ids
        c = min(n, k * mult)
        cand, _ = self._coarse.candidates(q, c, limit=n)
        return self._int8.rescore(q, cand, k, limit=n)

    def reconstruct(self, ids) -> np.ndarray:
        """The int8 approximation of stored vectors (needs rescore='int8')."""
        if self._int8 is None:
            raise ValueError("reconstruct needs the int8 vectors (rescore='int8')")
        return self._int8.reconstruct(ids)

    def verify(self) -> None:
        """Checks the checksums of a memory-mapped file this index was loaded from."""
        if self._loaded is not None:
            self._loaded.verify()

    def save(self, path) -> None:
        """Writes the index (embedrt container format, atomically)."""
        with self._lock:  # a consistent state: no add between the stages
            self._save(path)

    def _save(self, path) -> None:
        arrays = {}
        if self._coarse is not None:
            arrays.update(self._coarse.arrays())
        if self._int8 is not None:
            arrays["int8_codes"] = self._int8.codes
            arrays["int8_scales"] = self._int8.scales
        meta = {"dim": self._dim, "ntotal": self._n, "coarse": self.coarse, "rescore": self.rescore}
        if self._coarse is not None:
            meta.update(self._coarse.meta())
        _fileformat.write_file(path, _INDEX_KIND, _INDEX_VERSION, meta, arrays)

    @classmethod
    def load(cls, path, mmap: bool = True, verify=None) -> "Index":
        """Opens a saved index (see :meth:`Int8Index.load` for mmap and verify)."""
        f = _fileformat.read_file(path, _INDEX_KIND, _INDEX_VERSION, mmap=mmap, verify=verify)
        try:
            dim = as_int(f.meta["dim"], "dim", minimum=1)
            n = as_int(f.meta["ntotal"], "ntotal", minimum=0)
            index = cls(dim, coarse=f.meta["coarse"], rescore=f.meta["rescore"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed Index file ({e})") from None
        if index._coarse is not None:
            index._coarse = _COARSE[index.coarse].from_arrays(path, dim, f.arrays, f.meta)
            if index._coarse.codes.shape[0] != n:
                raise ValueError(f"{path}: {index.coarse} codes hold {index._coarse.codes.shape[0]} vectors, expected {n}")
        if index._int8 is not None:
            codes, scales = f.arrays.get("int8_codes"), f.arrays.get("int8_scales")
            if codes is None or scales is None:
                raise ValueError(f"{path}: missing int8 sections")
            _check_store_arrays(path, codes, scales, dim)
            if codes.shape[0] != n:
                raise ValueError(f"{path}: int8 codes hold {codes.shape[0]} vectors, expected {n}")
            index._int8 = _Int8Store.from_arrays(codes, scales)
        index._n = n
        index._loaded = f
        return index


# ----------------------------------------------------------------------------------------
# (end of Int8Index, Index)
# ----------------------------------------------------------------------------------------
