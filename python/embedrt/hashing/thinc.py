"""thinc: MurmurHash3 x64_128 (``NumpyOps().hash``) and the ``HashEmbed`` layer's forward pass."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import _core
from .._checks import as_float32, as_int
from ._args import aligned64, as_seed, as_uint64


def murmurhash3_128(keys, seed: int = 0) -> np.ndarray:
    """MurmurHash3 x64_128 of each uint64 key, as thinc's ``NumpyOps().hash(keys, seed)``
    (thinc's C function is named ``MurmurHash3_x86_128_uint64``, but its mixing is x64_128's
    over one 8-byte tail block).

    keys: uint64 [n] (a numpy uint64 array, or a list of ints in [0, 2**64)). Other integer
    dtypes raise TypeError: convert with ``keys.astype(np.uint64)``.
    seed: uint32.
    Returns uint32 [n, 4]: the low and high halves of h1, then of h2.
    """
    keys = as_uint64(keys, "keys")
    return _core.murmurhash3_128(keys, as_seed(seed))


def _init_table(n_rows: int, n_out: int, random_state: int, scale: float = 0.1) -> np.ndarray:
    rng = np.random.default_rng(random_state)
    return rng.uniform(-scale, scale, size=(n_rows, n_out)).astype(np.float32)


class HashEmbed:
    """thinc's ``HashEmbed`` forward pass: each id is hashed with MurmurHash3 x64_128 (seed
    ``seed``) into four 32-bit words h0..h3, and its vector is
    ``(((0 + T[h0 % n_rows]) + T[h1 % n_rows]) + T[h2 % n_rows]) + T[h3 % n_rows]``, summed in
    that order, so the float32 output is bit-identical to thinc's (NumpyOps) for the same
    table. Hashing, gathering and summing are fused in one threaded native pass.

    n_out: vector width; n_rows: table rows (1 <= n_rows < 2**32); seed: uint32 (thinc's
    ``seed``; thinc uses the layer id when none is given, see :meth:`from_thinc`).
    table: float32 [n_rows, n_out]; when None, a seeded uniform(-0.1, 0.1) table
    (``random_state``) is made, as thinc's default ``uniform_init`` range. The table is used
    as given when it is C-contiguous float32 and 64-byte aligned, else copied once. NaN or inf in the
    table are allowed and propagate into the vectors of the ids that use those rows.
    column: as thinc's ``column=``: the layer takes 2-D uint64 ids and embeds ``ids[:, column]``.

    Calling it: ids uint64 [n] (or [n, k] with ``column``) -> float32 [n, n_out]. thinc
    converts any integer ids with ``astype(uint64)``; embedrt asks for uint64 explicitly
    (TypeError otherwise). Dropout is not applied (inference, as thinc with is_train=False).
    """

    def __init__(self, n_out: int, n_rows: int, seed: int = 0, table=None,
                 column: Optional[int] = None, random_state: int = 0):
        self.n_out = as_int(n_out, "n_out", minimum=1)
        self.n_rows = as_int(n_rows, "n_rows", minimum=1)
        if self.n_rows > 0xFFFFFFFF:
            raise ValueError(f"n_rows must be < 2**32, got {self.n_rows}")
        self.seed = as_seed(seed)
        self.column = None if column is None else as_int(column, "column", minimum=0)
        if table is None:
            table = _init_table(self.n_rows, self.n_out, random_state)
        table = as_float32(table, "table", ndim=2, finite=False)
        if table.shape != (self.n_rows, self.n_out):
            raise ValueError(f"table: expected shape ({self.n_rows}, {self.n_out}), "
                             f"got {table.shape}")
        self.table = aligned64(table)

    @classmethod
    def from_thinc(cls, layer) -> "HashEmbed":
        """The same embedding as a thinc ``HashEmbed`` layer (initialized): its table ``E``,
        seed, nV, nO and ``column``. Also takes a model that contains one HashEmbed node (the
        first found is used)."""
        node = None
        for n in layer.walk():
            if n.name == "hashembed":
                node = n
                break
        if node is None:
            raise ValueError("layer: no thinc HashEmbed ('hashembed') node found")
        if not node.has_param("E") or node.get_param("E") is None:
            raise ValueError("layer: the HashEmbed table is not initialized; call "
                             "layer.initialize() first")
        table = node.ops.to_numpy(node.get_param("E"))
        column = layer.attrs.get("column", node.attrs.get("column"))
        return cls(table.shape[1], table.shape[0], seed=node.attrs["seed"], table=table,
                   column=column)

    def ids_to_rows(self, ids) -> np.ndarray:
        """The table rows each id uses: int64 [n, 4] (``murmurhash3_128(ids, seed) % n_rows``)."""
        ids = self._select(ids)
        return (_core.murmurhash3_128(ids, self.seed) % np.uint32(self.n_rows)).astype(np.int64)

    def _select(self, ids) -> np.ndarray:
        if self.column is None:
            return as_uint64(ids, "ids", ndim=1)
        ids = as_uint64(ids, "ids", ndim=2)
        if self.column >= ids.shape[1]:
            raise ValueError(f"ids: column {self.column} is out of range for shape {ids.shape}")
        return np.ascontiguousarray(ids[:, self.column])

    def __call__(self, ids) -> np.ndarray:
        ids = self._select(ids)
        return _core.hash_embed(ids, self.seed, self.table)

    def __repr__(self) -> str:
        col = "" if self.column is None else f", column={self.column}"
        return f"HashEmbed(n_out={self.n_out}, n_rows={self.n_rows}, seed={self.seed}{col})"
