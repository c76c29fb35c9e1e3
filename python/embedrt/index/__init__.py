"""Flat exact indexes over compact embeddings, with files that can be memory-mapped.

- :mod:`.binary`: :class:`BinaryIndex` (Hamming search over packed bits);
- :mod:`.int8`: :class:`Int8Index` (inner products over symmetric int8 vectors) and its store;
- :mod:`.sdc`: :class:`ResidualBinarizer`, :func:`~embedrt.sdc`, :func:`sdc_topk`,
  :class:`SDCIndex` (multi-bit binary codes);
- :mod:`.coarse`, :mod:`.two_stage`: the coarse stages and the two-stage :class:`Index`;
- :mod:`._storage`: the append-only row buffers they all grow.

Every index file uses embedrt's container format (embedrt._fileformat): a magic, a format
version, sizes and checksums. Nothing is unpickled.

Threads: an index may be shared. ``search`` calls run concurrently with each other and with
``add``; ``add`` calls are serialized by a lock of the index. A search sees the rows added
before it started (or a later state), never a partly added batch. Ids of rows added by
concurrent ``add`` calls follow the order in which the calls took the lock.
"""
from __future__ import annotations

from .binary import BinaryIndex
from .int8 import Int8Index
from .sdc import ResidualBinarizer, SDCIndex
from .two_stage import Index

# The functions sdc and sdc_topk are not bound here (the attribute `sdc` of this package is its
# submodule); embedrt and embedrt.index.sdc export them.
__all__ = ["BinaryIndex", "Int8Index", "Index", "ResidualBinarizer", "SDCIndex"]
