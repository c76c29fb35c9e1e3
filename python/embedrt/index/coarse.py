"""The coarse stages of the two-stage :class:`embedrt.Index`: compact codes that find the
candidates the int8 vectors rescore."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..quantize import quantize
from .binary import BinaryIndex
from .sdc import ResidualBinarizer, SDCIndex


class CoarseStage(Protocol):
    """What a coarse stage is: it stores compact codes of float32 rows and returns candidate
    ids for float32 queries. ``meta()`` is kept in the file's header, ``arrays()`` as its
    sections; ``from_arrays`` rebuilds the stage from them. Kinds are registered in
    :data:`COARSE`."""

    name: str
    nbytes_per_vector: int

    @property
    def codes(self) -> np.ndarray: ...

    def add(self, x: np.ndarray) -> None: ...

    def candidates(self, q: np.ndarray, c: int, limit=None):
        """``(ids int64 [m, c'], scores float32 [m, c'])``, best first, over the first `limit`
        rows (all when None)."""

    def arrays(self) -> dict: ...

    def meta(self) -> dict: ...

    @classmethod
    def from_arrays(cls, path, dim: int, arrays: dict, meta: dict) -> "CoarseStage": ...


class BinaryCoarse:
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
        self._index.add(quantize(x, "ubinary"))

    def candidates(self, q: np.ndarray, c: int, limit=None):
        dist, ids = self._index._search(quantize(q, "ubinary"), c, limit)
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
        s._index = BinaryIndex._of_codes(dim, codes)
        return s


class SDCCoarse:
    """Multi-bit binary codes (BEBR residual bit planes, ``coarse_bits`` per dimension), searched
    by symmetric distance calculation; the binarizer is fitted on the first batch added.

    Score: the SDC inner product of the reconstructions (an approximate inner product)."""

    name = "sdc"

    def __init__(self, dim: int, bits: int = 2):
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
        s._index = SDCIndex._of_codes(dim, bits, binarizer, codes)
        return s


# coarse kind -> stage
COARSE = {"binary": BinaryCoarse, "sdc": SDCCoarse}
