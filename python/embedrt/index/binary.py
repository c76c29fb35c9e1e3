"""BinaryIndex: exact Hamming search over packed binary codes (see :mod:`embedrt.index`)."""
from __future__ import annotations

import threading

import numpy as np

from .. import _core, _fileformat
from .._checks import as_array, as_int
from ._storage import append_rows


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
        index = cls._of_codes(nbits, codes)
        index._file = f if mmap else None
        index._mapped = bool(mmap) and index._n > 0
        return index

    @classmethod
    def _of_codes(cls, nbits: int, codes: np.ndarray) -> "BinaryIndex":
        """An index over `codes` (checked uint8 ``[n, code_size]``, kept as they are, e.g. a
        file's memory map): the loaders of this package use it."""
        index = cls(nbits)
        index._rows = (codes, codes.shape[0])
        return index

    def verify(self) -> None:
        """Checks the file this index was memory-mapped from against its checksums
        (ValueError if they differ), also after codes were added. A no-op for an index built
        in memory or loaded with mmap=False (verified when loaded)."""
        if self._file is not None and not self._file.verified:
            self._file.verify()
