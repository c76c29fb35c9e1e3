"""PyTorch-style ``embedding_bag`` and the quotient-remainder ``QREmbed``."""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from .. import _core
from .._checks import as_float32, as_int
from ._args import aligned64, as_index_array

_MODES = {"sum": 0, "mean": 1}
_QR_OPS = {"mult": 0, "add": 1, "concat": 2}


def _bag_args(ids, offsets, mode, weights, include_last_offset):
    """Checked (ids int64 [n], offsets int64 [n_bags + 1], weights float32 [n] or None)."""
    if mode not in _MODES:
        raise ValueError(f"mode must be 'sum' or 'mean', got {mode!r}")
    ids = as_index_array(ids, "ids")
    if offsets is None:
        if ids.ndim != 2:
            raise ValueError(f"ids: without offsets, expected a 2-D array [n_bags, bag_size], "
                             f"got shape {ids.shape}")
        n_bags, size = ids.shape
        offs = np.arange(n_bags + 1, dtype=np.int64) * size
        ids = ids.reshape(-1)
    else:
        if ids.ndim != 1:
            raise ValueError(f"ids: with offsets, expected a 1-D array, got shape {ids.shape}")
        offs = as_index_array(offsets, "offsets")
        if offs.ndim != 1:
            raise ValueError(f"offsets: expected a 1-D array, got shape {offs.shape}")
        n = ids.shape[0]
        if offs.size:
            if offs[0] != 0:
                raise ValueError(f"offsets: offsets[0] must be 0, got {int(offs[0])}")
            if offs.size > 1 and (np.diff(offs) < 0).any():
                raise ValueError("offsets: must be non-decreasing")
            if offs[-1] > n:
                raise ValueError(f"offsets: {int(offs[-1])} is past the end of ids ({n})")
        if include_last_offset:
            if offs.size == 0:
                raise ValueError("offsets: with include_last_offset, needs at least one entry")
            if offs[-1] != n:
                raise ValueError(f"offsets: with include_last_offset the last entry must be "
                                 f"len(ids) = {n}, got {int(offs[-1])}")
        else:
            offs = np.append(offs, np.int64(n))
        if offs.size == 1 and n:
            raise ValueError("offsets: no bags, but ids is not empty")
    w = None
    if weights is not None:
        if mode != "sum":
            raise ValueError("weights: per-id weights are only supported with mode='sum'")
        w = as_float32(weights, "weights", ndim=1, finite=False)
        if w.shape[0] != ids.shape[0]:
            raise ValueError(f"weights: expected {ids.shape[0]} entries (one per id), "
                             f"got {w.shape[0]}")
    return ids, offs, w


def embedding_bag(table, ids, offsets=None, mode: str = "sum", weights=None,
                  include_last_offset: bool = False) -> np.ndarray:
    """Sums (or means) of table rows per bag, as ``torch.nn.functional.embedding_bag``.

    table: float32 [n_rows, dim] (NaN/inf allowed; they propagate).
    ids: integer [n] with ``offsets``, or [n_bags, bag_size] without (fixed-size bags).
    offsets: integer [n_bags], the start of each bag in ids (offsets[0] == 0, non-decreasing,
    at most n); bag b is ``ids[offsets[b]:offsets[b + 1]]``, the last bag runs to the end.
    With ``include_last_offset=True`` offsets has n_bags + 1 entries, the last one n.
    mode: "sum" or "mean"; empty bags give zeros. weights: float32 [n] per-id weights
    (mode "sum" only, as PyTorch).
    Returns float32 [n_bags, dim]. Rows are summed in id order from +0.0 (weighted: the
    rounded products ``w * row``), mean divides by the bag size; every ISA level and thread
    count gives the same floats. Ids outside [0, n_rows) raise ValueError.
    """
    table = as_float32(table, "table", ndim=2, finite=False)
    ids, offs, w = _bag_args(ids, offsets, mode, weights, include_last_offset)
    return _core.embedding_bag(table, ids, offs, w, _MODES[mode])


class QREmbed:
    """Quotient-remainder compositional embedding (Shi et al., 2020, "Compositional
    Embeddings Using Complementary Partitions for Memory-Efficient Recommendation Systems").

    Category ``i`` of ``num_embeddings`` is embedded from two small tables: the quotient table
    Q [ceil(num_embeddings / num_collisions), dim] at row ``i // num_collisions`` and the
    remainder table R [num_collisions, dim] at row ``i % num_collisions``, combined by
    ``operation``: "mult" (element-wise product, the default), "add", or "concat" (Q and R
    are then dim/2 wide each; dim must be even).

    num_collisions defaults to ceil(sqrt(num_embeddings)) (the smallest total size).
    tables: optional (Q, R) float32 arrays; otherwise seeded uniform tables (random_state).
    Calling it: ``qr(ids)`` -> float32 [n, dim]; ``qr(ids, offsets, mode, weights)`` pools
    the per-id vectors per bag as :func:`embedding_bag` (arguments as there). Lookup, combine
    and pooling run fused in one threaded native pass (the combined vectors are never stored);
    per id the combination is rounded to float32 before it is added (weighted: then multiplied
    by the weight and rounded), so results equal numpy's ``q * r`` etc. pooled in id order.
    """

    def __init__(self, num_embeddings: int, dim: int, num_collisions: Optional[int] = None,
                 operation: str = "mult", tables=None, random_state: int = 0):
        self.num_embeddings = as_int(num_embeddings, "num_embeddings", minimum=1)
        self.dim = as_int(dim, "dim", minimum=1)
        if num_collisions is None:
            num_collisions = max(1, math.isqrt(self.num_embeddings - 1) + 1)
        self.num_collisions = as_int(num_collisions, "num_collisions", minimum=1)
        if operation not in ("mult", "add", "concat"):
            raise ValueError(f"operation must be 'mult', 'add' or 'concat', got {operation!r}")
        if operation == "concat" and self.dim % 2:
            raise ValueError(f"dim must be even for operation='concat', got {self.dim}")
        self.operation = operation
        nq = -(-self.num_embeddings // self.num_collisions)
        width = self.dim // 2 if operation == "concat" else self.dim
        if tables is None:
            rng = np.random.default_rng(random_state)
            bound = (1.0 / width) ** (0.25 if operation == "mult" else 0.5)
            q = rng.uniform(-bound, bound, (nq, width)).astype(np.float32)
            r = rng.uniform(-bound, bound, (self.num_collisions, width)).astype(np.float32)
        else:
            q, r = tables
        q = as_float32(q, "tables[0]", ndim=2, finite=False)
        r = as_float32(r, "tables[1]", ndim=2, finite=False)
        if q.shape != (nq, width):
            raise ValueError(f"tables[0]: expected shape ({nq}, {width}), got {q.shape}")
        if r.shape != (self.num_collisions, width):
            raise ValueError(f"tables[1]: expected shape ({self.num_collisions}, {width}), "
                             f"got {r.shape}")
        self.q_table, self.r_table = aligned64(q), aligned64(r)

    def __call__(self, ids, offsets=None, mode: str = "sum", weights=None,
                 include_last_offset: bool = False) -> np.ndarray:
        if offsets is None and weights is None:
            ids = as_index_array(ids, "ids")
            if ids.ndim != 1:
                raise ValueError(f"ids: expected a 1-D array, got shape {ids.shape}")
            offs, w = np.arange(ids.shape[0] + 1, dtype=np.int64), None
            mode = "sum"
        elif offsets is None:
            raise ValueError("weights: need offsets (bags) to apply per-id weights")
        else:
            ids, offs, w = _bag_args(ids, offsets, mode, weights, include_last_offset)
        if mode not in _MODES:
            raise ValueError(f"mode must be 'sum' or 'mean', got {mode!r}")
        return _core.qr_embedding_bag(self.q_table, self.r_table, self.num_embeddings, ids, offs,
                                      w, _MODES[mode], _QR_OPS[self.operation])

    def __repr__(self) -> str:
        return (f"QREmbed(num_embeddings={self.num_embeddings}, dim={self.dim}, "
                f"num_collisions={self.num_collisions}, operation={self.operation!r})")
