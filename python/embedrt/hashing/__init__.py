"""Hash embeddings: thinc's ``HashEmbed``, spaCy's ``MultiHashEmbed`` features, fastText's
subword ids, and PyTorch-style ``embedding_bag`` (with quotient-remainder ``QREmbed``).

Every hash reproduces its origin bit for bit:

- :func:`murmurhash3_128`: MurmurHash3 x64_128 of each uint64 key's 8 little-endian bytes,
  as thinc's ``NumpyOps().hash(ids, seed)``.
- :func:`hash_string`: MurmurHash64A (seed 1) of the UTF-8 bytes, as spaCy's
  ``spacy.strings.hash_string``; with ``spacy_compatible=True`` the reserved symbols get their
  small ids, as ``StringStore.add`` does.
- :class:`HashEmbed`: the forward pass of thinc's ``HashEmbed`` layer (same floats).
- :func:`fasttext_subword_ids`: fastText's ``Dictionary::computeSubwords`` ids.

The native kernels release the GIL and run on embedrt's thread pool
(:func:`embedrt.set_num_threads`). Results do not depend on the ISA level or thread count.

The hashes are grouped by origin: :mod:`.thinc` (``murmurhash3_128``, ``HashEmbed``),
:mod:`.spacy` (``hash_string``, ``word_shape``, ``MultiHashEmbed``), :mod:`.fasttext`
(``fasttext_subword_ids``) and :mod:`.bags` (``embedding_bag``, ``QREmbed``).
"""
from __future__ import annotations

from .bags import QREmbed, embedding_bag
from .fasttext import fasttext_subword_ids
from .spacy import MultiHashEmbed, hash_string, word_shape
from .thinc import HashEmbed, murmurhash3_128

__all__ = [
    "murmurhash3_128",
    "hash_string",
    "HashEmbed",
    "MultiHashEmbed",
    "fasttext_subword_ids",
    "embedding_bag",
    "QREmbed",
    "word_shape",
]
