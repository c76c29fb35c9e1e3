"""Multi-bit binary codes with symmetric distance calculation (BEBR).

A :class:`ResidualBinarizer` with ``bits = u`` stores every dimension of an embedding in u bit
planes with the fixed weights 1, 1/2, 1/4, ...::

    x_hat = s * sum_i 2^-i b_i,    b_i in {-1, +1}^d

so each dimension takes one of the 2^u odd levels ``-(2^u - 1) ... -1, +1 ... 2^u - 1`` in units
of ``s / 2^(u-1)`` (u = 2: -3, -1, +1, +3 times s/2). Encoding is greedy residual binarization,
which is the same as rounding each (rotated) value to the nearest odd level.

Two codes are compared exactly from their bits, without any floating-point work per pair::

    sdc(q, d) = sum_dims level_q * level_d
              = sum_ij 2^(2(u-1)-i-j) * (dim - 2 popcount(q_i XOR d_j))

an int32 that equals the inner product of the two reconstructions divided by
``ResidualBinarizer.scale`` (= (s / 2^(u-1))^2).

Code layout: uint8 ``[n, bits, ceil(dim / 8)]``, one row of packed bits per plane (plane 0 has
weight 1), packed MSB-first like ``numpy.packbits``; bit 1 means +1; bits past the last
dimension are 0. Codes from elsewhere whose padding bits are set are read as if they were 0:
:func:`sdc` and :func:`sdc_topk` (given ``dim``) and :class:`SDCIndex` ignore them, as
:class:`embedrt.BinaryIndex` does.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import _core, _fileformat
from .._checks import as_array, as_float32, as_int
from ._storage import append_rows

__all__ = ["ResidualBinarizer", "sdc", "sdc_topk", "SDCIndex"]

_BINARIZER_KIND = "ResidualBinarizer"
_INDEX_KIND = "SDCIndex"
_FORMAT_VERSION = 1


def _single_threaded_blas():
    """Limits BLAS/LAPACK to one thread when threadpoolctl is installed (a no-op otherwise)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        import contextlib

        return contextlib.nullcontext()
    return threadpool_limits(1)


def _check_bits(bits) -> int:
    bits = as_int(bits, "bits")
    if not 1 <= bits <= 4:
        raise ValueError(f"bits must be 1..4, got {bits}")
    return bits


def _check_codes(codes, name: str) -> np.ndarray:
    codes = as_array(codes, name, np.uint8, ndim=3)
    if not 1 <= codes.shape[1] <= 4:
        raise ValueError(f"{name}: axis 1 holds the bit planes and must be 1..4, got shape {codes.shape}")
    if codes.shape[2] < 1:
        raise ValueError(f"{name}: codes must hold at least one byte per plane, got shape {codes.shape}")
    return codes


def _padding_mask(dim: int) -> int:
    """The bits of the last byte of a plane that hold dimensions (MSB-first)."""
    r = dim % 8
    return 0xFF if r == 0 else (0xFF << (8 - r)) & 0xFF


def _clear_padding(codes: np.ndarray, dim: int) -> np.ndarray:
    """`codes` with the bits past `dim` cleared: the array itself when none is set, else a copy."""
    mask = _padding_mask(dim)
    if mask == 0xFF or codes.shape[0] == 0:
        return codes
    last = (dim - 1) // 8
    if not (codes[:, :, last] & np.uint8(~mask & 0xFF)).any():
        return codes
    out = np.array(codes, dtype=np.uint8, order="C")
    out[:, :, last] &= np.uint8(mask)
    out[:, :, last + 1:] = 0
    return out


def _check_pair(q_codes, db_codes, dim):
    q = _check_codes(q_codes, "q_codes")
    d = _check_codes(db_codes, "db_codes")
    if q.shape[1] != d.shape[1]:
        raise ValueError(f"q_codes and db_codes have different bits: {q.shape[1]} vs {d.shape[1]}")
    if q.shape[2] != d.shape[2]:
        raise ValueError(f"q_codes and db_codes have different widths: {q.shape[2]} vs {d.shape[2]} "
                         "bytes per plane")
    nb = q.shape[2]
    if dim is None:
        dim = 8 * nb
    dim = as_int(dim, "dim", minimum=1)
    if not 8 * (nb - 1) < dim <= 8 * nb:
        raise ValueError(f"dim {dim} does not match codes of {nb} bytes per plane")
    return _clear_padding(q, dim), _clear_padding(d, dim), dim


def sdc(q_codes, db_codes, dim=None) -> np.ndarray:
    """Exact SDC scores, int32 ``[m, n]``: ``sum_dims level_q * level_d`` for every pair.

    q_codes, db_codes: uint8 ``[m, bits, nb]`` and ``[n, bits, nb]`` (same bits and width).
    dim: the number of dimensions the codes hold (default ``8 * nb``); pass it when it is not
    a multiple of 8 so the padding bits are not counted as dimensions (bits past ``dim`` are
    ignored, whatever their value).

    Multiply by ``ResidualBinarizer.scale`` to get the inner product of the reconstructions.
    """
    q, d, dim = _check_pair(q_codes, db_codes, dim)
    return _core.sdc_scores(q, d, dim)


def sdc_topk(q_codes, db_codes, k, dim=None):
    """The k best database codes per query by SDC score.

    Returns ``(scores int32 [m, k'], ids int64 [m, k'])`` with ``k' = min(k, n)``, best (largest
    inner product) first, ties broken by the smaller id. Deterministic for any thread count.
    """
    k = as_int(k, "k", minimum=1)
    q, d, dim = _check_pair(q_codes, db_codes, dim)
    return _core.sdc_topk(q, d, min(k, max(d.shape[0], 1)), dim)


class ResidualBinarizer:
    """Encodes float embeddings as multi-bit binary codes (BEBR recurrent binarization).

    bits: 1..4 planes per dimension (1 = plain sign binarization, like ``quantize(..., "ubinary")``).
    rotate: learn an orthogonal rotation on the calibration data (ITQ-style alternation between
        quantizing and an orthogonal Procrustes fit). Rotations keep inner products, so the
        SDC scores stay exact integers proportional to the inner product of reconstructions.
    n_iter: rotation iterations; seed: the starting random rotation; max_rotation_rows: the
        rotation is learned on at most this many calibration rows (a random sample).

    After :meth:`fit`: ``dim``, ``step`` (s), ``unit`` (s / 2^(u-1), the value of one level step),
    ``scale`` (unit^2: ``sdc * scale`` is the inner product of the reconstructions) and
    ``rotation`` (``[dim, dim]`` float32, or None); codes are taken of ``X @ rotation``.
    No centering is applied: centering would add terms to the inner product that are not
    bit arithmetic.
    """

    def __init__(self, bits: int = 2, rotate: bool = True, n_iter: int = 10, seed: int = 0,
                 max_rotation_rows: int = 20000):
        self.bits = _check_bits(bits)
        self.rotate = bool(rotate)
        self.n_iter = as_int(n_iter, "n_iter", minimum=0)
        self.seed = as_int(seed, "seed")
        self.max_rotation_rows = as_int(max_rotation_rows, "max_rotation_rows", minimum=1)
        self.dim = None
        self.step = None
        self.rotation = None

    # -- properties ---------------------------------------------------------------------
    @property
    def fitted(self) -> bool:
        return self.step is not None

    @property
    def unit(self) -> float:
        self._need_fit()
        return float(self.step) / (1 << (self.bits - 1))

    @property
    def scale(self) -> float:
        """Inner product of reconstructions per unit of SDC score."""
        return self.unit * self.unit

    @property
    def code_bytes(self) -> int:
        """Bytes per plane (``ceil(dim / 8)``)."""
        self._need_fit()
        return (self.dim + 7) // 8

    def __repr__(self):
        state = f"dim={self.dim}, step={self.step:.6g}" if self.fitted else "not fitted"
        return f"ResidualBinarizer(bits={self.bits}, rotate={self.rotate}, {state})"

    def _need_fit(self):
        if self.step is None:
            raise RuntimeError("ResidualBinarizer is not fitted; call fit(X) first")

    # -- quantization -------------------------------------------------------------------
    def _levels_of(self, y: np.ndarray, unit: float) -> np.ndarray:
        top = (1 << self.bits) - 1
        return np.clip(2.0 * np.ceil(y / (2.0 * unit)) - 1.0, -top, top)

    def _best_unit(self, y: np.ndarray, start: float | None = None) -> float:
        """The level step minimizing the reconstruction error of y: a grid search (unless a
        starting value is given), then a few least-squares refinements with the levels fixed."""
        flat = y.reshape(-1)
        if flat.size > 100_000:
            flat = flat[np.random.default_rng(self.seed).integers(0, flat.size, 100_000)]
        rms = float(np.sqrt(np.mean(flat * flat)))
        if not rms > 0.0:
            return 1.0

        def err_of(unit):
            return float(np.sum((flat - self._levels_of(flat, unit) * unit) ** 2))

        half = 1 << (self.bits - 1)
        if start is None:
            grid = np.linspace(0.1, 3.0, 30) * rms / half
            errs = [err_of(unit) for unit in grid]
            unit = float(grid[int(np.argmin(errs))])
            best_err = float(min(errs))
        else:
            unit, best_err = float(start), err_of(start)
        for _ in range(3):
            lv = self._levels_of(flat, unit)
            new = float(np.dot(flat, lv) / np.dot(lv, lv))
            if not new > 0.0:
                break
            new_err = err_of(new)
            if new_err >= best_err:
                break
            unit, best_err = new, new_err
        return unit

    def fit(self, X) -> "ResidualBinarizer":
        """Chooses the step (and rotation) on calibration data X ``[n, dim]``; returns self."""
        X = as_float32(X, "X", ndim=2)
        if X.shape[0] == 0 or X.shape[1] == 0:
            raise ValueError(f"X: need at least one row and one column to fit, got shape {X.shape}")
        if self.dim is not None and X.shape[1] != self.dim:
            raise ValueError(f"X: expected {self.dim} columns, got {X.shape[1]}")
        d = X.shape[1]
        rotation = None
        if self.rotate and d > 1:
            rng = np.random.default_rng(self.seed)
            xs = X
            if xs.shape[0] > self.max_rotation_rows:
                xs = xs[np.sort(rng.choice(xs.shape[0], self.max_rotation_rows, replace=False))]
            r, _ = np.linalg.qr(rng.standard_normal((d, d)))
            r = r.astype(np.float32)
            unit = None
            with _single_threaded_blas():
                # Small matrices: threaded BLAS/LAPACK only adds synchronization here.
                for _ in range(self.n_iter):
                    y = xs @ r
                    unit = self._best_unit(y, start=unit)
                    b = (self._levels_of(y, unit) * unit).astype(np.float32)
                    u_, _, vt = np.linalg.svd((xs.T @ b).astype(np.float64))
                    r = (u_ @ vt).astype(np.float32)
            rotation = r
        y = X @ rotation if rotation is not None else X
        unit = self._best_unit(y.astype(np.float64))
        self.dim = d
        self.rotation = rotation
        self.step = float(unit * (1 << (self.bits - 1)))
        return self

    def _rotated(self, X) -> np.ndarray:
        X = as_float32(X, "X", ndim=2, allow_1d=True)
        self._need_fit()
        if X.shape[1] != self.dim:
            raise ValueError(f"X: expected {self.dim} columns, got {X.shape[1]}")
        return X @ self.rotation if self.rotation is not None else X

    def encode(self, X, batch_size: int = 65536) -> np.ndarray:
        """Codes uint8 ``[n, bits, ceil(dim / 8)]`` of float embeddings X ``[n, dim]``."""
        X = as_float32(X, "X", ndim=2, allow_1d=True)
        self._need_fit()
        if X.shape[1] != self.dim:
            raise ValueError(f"X: expected {self.dim} columns, got {X.shape[1]}")
        u = self.bits
        out = np.empty((X.shape[0], u, self.code_bytes), dtype=np.uint8)
        unit = np.float32(self.unit)
        top = (1 << u) - 1
        for s in range(0, X.shape[0], batch_size):
            y = self._rotated(X[s:s + batch_size])
            lv = np.clip(2.0 * np.ceil(y / (2 * unit)) - 1.0, -top, top)
            idx = ((lv + top) * 0.5).astype(np.uint8)  # 0 .. 2^u - 1, plane 0 = most significant bit
            for p in range(u):
                out[s:s + batch_size, p] = np.packbits((idx >> (u - 1 - p)) & 1, axis=1)
        return out

    def _check_own_codes(self, codes) -> np.ndarray:
        self._need_fit()
        codes = _check_codes(codes, "codes")
        if codes.shape[1] != self.bits or codes.shape[2] != self.code_bytes:
            raise ValueError(f"codes: expected shape [n, {self.bits}, {self.code_bytes}], got {codes.shape}")
        return codes

    def levels(self, codes) -> np.ndarray:
        """The integer levels int8 ``[n, dim]`` (odd, in ``-(2^u - 1) .. 2^u - 1``) of codes, in
        the rotated space: ``sdc(q, d) == levels(q) @ levels(d).T`` exactly."""
        codes = self._check_own_codes(codes)
        n = codes.shape[0]
        acc = np.zeros((n, self.dim), dtype=np.int8)
        for p in range(self.bits):
            b = np.unpackbits(codes[:, p], axis=1, count=self.dim).astype(np.int8) * 2 - 1
            acc += b * np.int8(1 << (self.bits - 1 - p))
        return acc

    def decode(self, codes, rotate_back: bool = True) -> np.ndarray:
        """Float32 reconstructions ``[n, dim]``.

        With rotate_back (default) they are in the input space (the rotation undone); otherwise
        in the rotated space, where they are exactly ``levels(codes) * unit``. Either way
        ``decode(q) @ decode(d).T == sdc(q, d) * scale`` up to float rounding (rotations keep
        inner products).
        """
        lv = self.levels(codes).astype(np.float32) * np.float32(self.unit)
        if rotate_back and self.rotation is not None:
            lv = lv @ self.rotation.T
        return np.ascontiguousarray(lv, dtype=np.float32)

    def sdc(self, q_codes, db_codes) -> np.ndarray:
        """``sdc(q_codes, db_codes, dim=self.dim)``."""
        self._need_fit()
        return sdc(q_codes, db_codes, dim=self.dim)

    # -- files ----------------------------------------------------------------------------
    def _meta(self) -> dict:
        return {"bits": self.bits, "dim": self.dim, "step": self.step, "rotate": self.rotate,
                "n_iter": self.n_iter, "seed": self.seed}

    def _arrays(self) -> dict:
        rot = self.rotation if self.rotation is not None else np.zeros((0, 0), np.float32)
        return {"rotation": rot}

    @classmethod
    def _from_parts(cls, path, meta: dict, arrays: dict) -> "ResidualBinarizer":
        try:
            b = cls(bits=meta["bits"], rotate=meta["rotate"], n_iter=meta["n_iter"], seed=meta["seed"])
            dim, step = as_int(meta["dim"], "dim", minimum=1), float(meta["step"])
            rot = arrays["rotation"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed binarizer description ({e})") from None
        if not (np.isfinite(step) and step > 0):
            raise ValueError(f"{path}: invalid step {step}")
        if rot.size == 0:
            rot = None
        elif rot.shape != (dim, dim) or rot.dtype != np.float32:
            raise ValueError(f"{path}: rotation has shape {rot.shape}, expected ({dim}, {dim})")
        else:
            rot = np.array(rot)
            if not np.isfinite(rot).all():
                raise ValueError(f"{path}: rotation contains NaN or infinity")
        b.dim, b.step, b.rotation = dim, step, rot
        return b

    def save(self, path) -> None:
        """Writes the fitted binarizer (embedrt container, kind "ResidualBinarizer")."""
        self._need_fit()
        _fileformat.write_file(path, _BINARIZER_KIND, _FORMAT_VERSION, self._meta(), self._arrays())

    @classmethod
    def load(cls, path) -> "ResidualBinarizer":
        """Reads a file written by :meth:`save` (checksums verified)."""
        f = _fileformat.read_file(path, _BINARIZER_KIND, _FORMAT_VERSION, mmap=False)
        return cls._from_parts(path, f.meta, f.arrays)


class SDCIndex:
    """A flat index of multi-bit binary codes searched by exact SDC scores.

    dim, bits: the embedding width and bits per dimension.
    binarizer: a fitted :class:`ResidualBinarizer` to use; by default one is fitted (with a
        learned rotation) on the first batch given to :meth:`add`.

    search() returns float32 scores ``sdc * binarizer.scale`` (approximate inner products) and
    int64 ids (insertion order). Files use embedrt's container format and can be memory-mapped.

    Codes given to :meth:`add_codes` or read from a file may have bits past ``dim`` set; they
    are ignored, as in :class:`embedrt.BinaryIndex` (:meth:`add_codes` stores them cleared, a
    loaded file's codes are kept as stored and cleared in the search layout).

    Threads: searches run concurrently with each other and with adds; adds are serialized by a
    lock of the index. A search sees the rows added before it started (or a later state).
    """

    def __init__(self, dim: int, bits: int = 2, binarizer: ResidualBinarizer | None = None):
        self.dim = as_int(dim, "dim", minimum=1)
        self.bits = _check_bits(bits)
        if binarizer is not None:
            if not isinstance(binarizer, ResidualBinarizer):
                raise TypeError(f"binarizer must be a ResidualBinarizer, got {type(binarizer).__name__}")
            if binarizer.bits != self.bits:
                raise ValueError(f"binarizer has {binarizer.bits} bits, the index {self.bits}")
            if binarizer.fitted and binarizer.dim != self.dim:
                raise ValueError(f"binarizer has dim {binarizer.dim}, the index {self.dim}")
        self.binarizer = binarizer if binarizer is not None else ResidualBinarizer(self.bits)
        self._lock = threading.Lock()  # serializes adds
        self._pack_lock = threading.Lock()  # serializes updates of the search layout
        # (capacity rows, the number in use), published together (grown geometrically by add)
        self._rows = (np.zeros((0, self.bits, (self.dim + 7) // 8), dtype=np.uint8), 0)
        # The search layout of the first _packed_n codes in the layout the running kernel
        # variant searches (_packed_layout: groups of 8 codes as uint64 words, or blocks of 32
        # codes of nibbles), extended on the next search after adds, and built again when the
        # variant's layout changes (EMBEDRT_ISA / set_isa at run time): a search then reads it
        # as it is.
        self._packed_layout = None
        self._packed = np.zeros((0, 0), dtype=np.uint64)
        self._packed_n = 0
        self._file = None  # the file this index was memory-mapped from (for verify())

    @property
    def _codes(self) -> np.ndarray:
        return self._rows[0]

    @property
    def _n(self) -> int:
        return self._rows[1]

    def __len__(self) -> int:
        return self.ntotal

    @property
    def ntotal(self) -> int:
        return self._n

    @property
    def codes(self) -> np.ndarray:
        """All stored codes, uint8 ``[ntotal, bits, ceil(dim / 8)]`` (a read-only view)."""
        buf, n = self._rows
        view = buf[:n].view(np.ndarray)
        view.flags.writeable = False
        return view

    def _group_words(self, layout: str) -> int:
        """uint64 words per group of codes (sdc_layout_codes(layout) codes) of `layout`."""
        nb = (self.dim + 7) // 8  # bytes per plane
        if layout == "blocks32":
            return self.bits * nb * 4
        return self.bits * ((nb + 7) // 8) * 8

    def _search_layout(self, rows=None):
        """``(packed, layout)``: the packed codes for the search of `rows` (a (buffer, n)
        snapshot; the current rows by default) in the layout the running kernel variant
        searches, brought up to date: only the groups from the last partly packed one onwards
        are packed again (all of them when the layout changed), with the bits past dim
        cleared."""
        buf, n = self._rows if rows is None else rows
        layout = _core.sdc_layout(self.bits)
        with self._pack_lock:
            if self._packed_layout != layout:
                self._packed = np.zeros((0, self._group_words(layout)), dtype=np.uint64)
                self._packed_n = 0
                self._packed_layout = layout
            if self._packed_n < n:
                group = _core.sdc_layout_codes(layout)
                g0 = self._packed_n // group
                step = 1 << 16  # codes masked and packed per pass (a multiple of the group)
                packed = self._packed
                for start in range(g0 * group, n, step):
                    chunk = _clear_padding(buf[start:min(n, start + step)], self.dim)
                    tail = _core.sdc_pack(chunk, layout).reshape(-1, self._group_words(layout))
                    packed = append_rows(packed, start // group, tail)
                self._packed = packed
                self._packed_n = n
            return self._packed.reshape(-1), layout

    def _append(self, codes: np.ndarray) -> None:
        """Appends codes (the caller holds the add lock)."""
        buf, n = self._rows
        self._rows = (append_rows(buf, n, codes), n + codes.shape[0])

    def __repr__(self):
        return f"SDCIndex(dim={self.dim}, bits={self.bits}, ntotal={self.ntotal})"

    def add(self, X) -> None:
        """Adds float embeddings ``[n, dim]`` (fits the binarizer on the first call if needed)."""
        X = as_float32(X, "X", ndim=2, allow_1d=True)
        if X.shape[1] != self.dim:
            raise ValueError(f"X: expected {self.dim} columns, got {X.shape[1]}")
        if X.shape[0] == 0:
            return
        if not self.binarizer.fitted:
            with self._lock:
                if not self.binarizer.fitted:
                    self.binarizer.fit(X)
        codes = self.binarizer.encode(X)
        with self._lock:
            self._append(codes)

    def add_codes(self, codes) -> None:
        """Adds codes made by this index's binarizer, uint8 ``[n, bits, ceil(dim / 8)]``.
        Bits past ``dim`` are ignored (stored cleared)."""
        codes = _check_codes(codes, "codes")
        want = (self.bits, (self.dim + 7) // 8)
        if codes.shape[1:] != want:
            raise ValueError(f"codes: expected shape [n, {want[0]}, {want[1]}], got {codes.shape}")
        if codes.shape[0]:
            codes = _clear_padding(codes, self.dim)
            with self._lock:
                self._append(codes)

    def _query_codes(self, Q) -> np.ndarray:
        Q = as_float32(Q, "queries", ndim=2, allow_1d=True)
        if Q.shape[1] != self.dim:
            raise ValueError(f"queries: expected {self.dim} columns, got {Q.shape[1]}")
        if not self.binarizer.fitted:
            raise RuntimeError("SDCIndex is empty and has no fitted binarizer; add data first")
        return self.binarizer.encode(Q)

    def search(self, queries, k: int = 10):
        """The k nearest stored vectors per query by SDC score.

        Returns ``(scores float32 [m, k'], ids int64 [m, k'])``, ``k' = min(k, ntotal)``, best
        first, ties by the smaller id.
        """
        k = as_int(k, "k", minimum=1)
        return self._search(queries, k, None)

    def _search(self, queries, k: int, limit):
        """search() over the first `limit` rows (all rows when None)."""
        Q = as_float32(queries, "queries", ndim=2, allow_1d=True)
        if Q.shape[1] != self.dim:
            raise ValueError(f"queries: expected {self.dim} columns, got {Q.shape[1]}")
        buf, n = self._rows  # one snapshot for the layout and the search
        if limit is not None:
            n = min(n, limit)
        if n == 0 or Q.shape[0] == 0:
            kk = min(k, n)
            return np.zeros((Q.shape[0], kk), np.float32), np.zeros((Q.shape[0], kk), np.int64)
        q = self._query_codes(Q)
        packed, layout = self._search_layout((buf, n))
        s, ids = _core.sdc_topk(q, buf[:n], min(k, n), self.dim, packed, layout)
        return (s.astype(np.float64) * self.binarizer.scale).astype(np.float32), ids

    def candidates(self, queries, n: int) -> np.ndarray:
        """Ids int64 ``[m, min(n, ntotal)]`` of the n best stored vectors per query (best
        first): the coarse stage of a two-stage search."""
        n = as_int(n, "n", minimum=1)
        return self.search(queries, n)[1]

    # -- files ----------------------------------------------------------------------------
    def save(self, path) -> None:
        """Writes the index (embedrt container, kind "SDCIndex"): binarizer and codes."""
        if not self.binarizer.fitted:
            raise RuntimeError("cannot save an SDCIndex without a fitted binarizer; add data first")
        meta = {"dim": self.dim, "bits": self.bits, "binarizer": self.binarizer._meta()}
        arrays = dict(self.binarizer._arrays())
        arrays["codes"] = self.codes  # one snapshot of the rows
        _fileformat.write_file(path, _INDEX_KIND, _FORMAT_VERSION, meta, arrays)

    @classmethod
    def load(cls, path, mmap: bool = True, verify=None) -> "SDCIndex":
        """Opens a saved index, as :meth:`embedrt.BinaryIndex.load` does.

        mmap=True (default) maps the codes without reading them (they stay on disk, read-only,
        until the first search packs them); their checksums are verified when ``verify=True``
        is passed or :meth:`verify` is called. mmap=False reads and verifies everything at
        once. A file that is not an SDCIndex, is truncated, or whose header or (verified) data
        is altered raises ValueError."""
        f = _fileformat.read_file(path, _INDEX_KIND, _FORMAT_VERSION, mmap=mmap, verify=verify)
        try:
            dim, bits = as_int(f.meta["dim"], "dim", minimum=1), _check_bits(f.meta["bits"])
            bmeta = f.meta["binarizer"]
            codes = f.arrays["codes"]
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed index description ({e})") from None
        binarizer = ResidualBinarizer._from_parts(path, bmeta, f.arrays)
        if binarizer.dim != dim or binarizer.bits != bits:
            raise ValueError(f"{path}: binarizer does not match the index (dim, bits)")
        if codes.dtype != np.uint8 or codes.ndim != 3 or codes.shape[1:] != (bits, (dim + 7) // 8):
            raise ValueError(f"{path}: codes have shape {codes.shape}, expected [n, {bits}, {(dim + 7) // 8}]")
        index = cls._of_codes(dim, bits, binarizer, codes)
        index._file = f if mmap else None
        return index

    @classmethod
    def _of_codes(cls, dim: int, bits: int, binarizer, codes: np.ndarray) -> "SDCIndex":
        """An index over `codes` (checked uint8 ``[n, bits, ceil(dim / 8)]``, kept as they are,
        e.g. a file's memory map): the loaders of this package use it."""
        index = cls(dim, bits, binarizer=binarizer)
        index._rows = (codes, int(codes.shape[0]))
        return index

    def verify(self) -> None:
        """Checks the file this index was memory-mapped from against its checksums
        (ValueError if they differ), also after codes were added. A no-op for an index built
        in memory or loaded with mmap=False (verified when loaded)."""
        if self._file is not None and not self._file.verified:
            self._file.verify()
