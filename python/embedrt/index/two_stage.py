"""Index: two-stage search (compact codes find candidates, int8 vectors rescore them), see
:mod:`embedrt.index`."""
from __future__ import annotations

import threading

import numpy as np

from .. import _fileformat
from .._checks import as_int, as_k, float_rows
from ..quantize import quantize
from .coarse import COARSE, SDCCoarse
from .int8 import Int8Store, check_store_arrays

KIND = "embedrt.Index"
VERSION = 1
RESCORE = ("int8",)


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
        if coarse is not None and coarse not in COARSE:
            raise ValueError(f"coarse must be one of {sorted(COARSE)} or None; got {coarse!r}")
        if rescore is not None and rescore not in RESCORE:
            raise ValueError(f"rescore must be one of {list(RESCORE)} or None; got {rescore!r}")
        if coarse is None and rescore is None:
            raise ValueError("coarse and rescore cannot both be None")
        if coarse == "sdc":
            self._coarse = SDCCoarse(self._dim, coarse_bits)
        else:
            self._coarse = COARSE[coarse](self._dim) if coarse else None
        self._int8 = Int8Store(self._dim) if rescore else None
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
        x = float_rows(embeddings, "embeddings", self._dim)
        if x.shape[0] == 0:
            return np.zeros(0, dtype=np.int64)
        codes = scales = None
        if self._int8 is not None:
            codes, scales = quantize(x, "int8_sym")
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
        q = float_rows(queries, "queries", self._dim)
        n = self._n  # both stages hold at least n rows; the search reads those
        k = as_k(k, n)
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
        _fileformat.write_file(path, KIND, VERSION, meta, arrays)

    @classmethod
    def load(cls, path, mmap: bool = True, verify=None) -> "Index":
        """Opens a saved index (see :meth:`Int8Index.load` for mmap and verify)."""
        f = _fileformat.read_file(path, KIND, VERSION, mmap=mmap, verify=verify)
        try:
            dim = as_int(f.meta["dim"], "dim", minimum=1)
            n = as_int(f.meta["ntotal"], "ntotal", minimum=0)
            index = cls(dim, coarse=f.meta["coarse"], rescore=f.meta["rescore"])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{path}: malformed Index file ({e})") from None
        if index._coarse is not None:
            index._coarse = COARSE[index.coarse].from_arrays(path, dim, f.arrays, f.meta)
            if index._coarse.codes.shape[0] != n:
                raise ValueError(f"{path}: {index.coarse} codes hold {index._coarse.codes.shape[0]} vectors, "
                                 f"expected {n}")
        if index._int8 is not None:
            codes, scales = f.arrays.get("int8_codes"), f.arrays.get("int8_scales")
            if codes is None or scales is None:
                raise ValueError(f"{path}: missing int8 sections")
            check_store_arrays(path, codes, scales, dim)
            if codes.shape[0] != n:
                raise ValueError(f"{path}: int8 codes hold {codes.shape[0]} vectors, expected {n}")
            index._int8 = Int8Store.from_arrays(codes, scales)
        index._n = n
        index._loaded = f
        return index


# -- the two stages one at a time: the surface of a search over shards (embedrt.distributed) --

def coarse_candidates(index: Index, queries: np.ndarray, c: int):
    """The coarse stage of `index` alone: ``(ids int64 [m, c'], scores float32 [m, c'])`` of
    the ``c' = min(c, len(index))`` best rows for float32 queries (checked with
    :func:`embedrt._checks.float_rows`), best first, ties by the smaller id."""
    return index._coarse.candidates(queries, c)


def rescore(index: Index, queries: np.ndarray, candidates: np.ndarray, k: int):
    """The int8 stage of `index` alone: the k best of `candidates` (int64 ``[m, c]`` row ids of
    the index, -1 for none) rescored with the float32 queries, as :meth:`Index.search` does:
    ``(scores float32 [m, k], ids int64 [m, k])``, negative ids where there are fewer candidates."""
    return index._int8.rescore(queries, candidates, k)
