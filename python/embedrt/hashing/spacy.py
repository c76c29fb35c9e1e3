"""spaCy: string hashes (``hash_string``, ``StringStore`` ids), lexical features and
``MultiHashEmbed``'s embedding part."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from .. import _core
from .._checks import as_int
from .thinc import HashEmbed

_SYMBOLS = None


def _spacy_symbols() -> dict:
    global _SYMBOLS
    if _SYMBOLS is None:
        from ._spacy_symbols import SYMBOLS

        _SYMBOLS = SYMBOLS
    return _SYMBOLS


def hash_string(strings, spacy_compatible: bool = False):
    """MurmurHash64A (seed 1) of each string's UTF-8 bytes: spaCy's string hash.

    strings: a str (returns an int) or a sequence of str (returns a uint64 array).
    The empty string hashes like any other (``MurmurHash64A(b"", 1)``).

    spaCy's ``StringStore.add`` (and so ``Lexeme.norm``, ``Token.orth``, ...) returns small
    fixed ids instead of hashes for its few hundred reserved symbols (``spacy.symbols``, e.g.
    ``"ORTH"`` -> 65, ``"X"`` -> 101, ``"nsubj"``) and 0 for ``""``. Pass
    ``spacy_compatible=True`` to get those ids too; the plain hash matches
    ``spacy.strings.hash_string``.
    """
    if isinstance(strings, str):
        if spacy_compatible:
            sym = _spacy_symbols().get(strings)
            if sym is not None:
                return int(sym)
        return int(hash_string([strings])[0])
    if isinstance(strings, (bytes, bytearray)):
        raise TypeError("strings: expected str or a sequence of str, got bytes (decode it first)")
    if isinstance(strings, np.ndarray) and strings.dtype.kind not in "UO":
        raise TypeError(f"strings: expected str items, got an array of {strings.dtype}")
    if not isinstance(strings, (list, tuple)):
        strings = list(strings)
    out = _core.hash_strings(strings, 1)
    if spacy_compatible and len(strings):
        sym = _spacy_symbols()
        for i, s in enumerate(strings):
            v = sym.get(s)
            if v is not None:
                out[i] = v
    return out


def word_shape(text: str) -> str:
    """spaCy's word shape (``spacy.lang.lex_attrs.word_shape``): letters become ``X``/``x``
    (upper/lower case), digits ``d``, other characters stay; runs of the same shape character
    are cut after 4; strings of 100 or more characters give ``"LONG"``."""
    if len(text) >= 100:
        return "LONG"
    shape = []
    last = ""
    seq = 0
    for char in text:
        if char.isalpha():
            shape_char = "X" if char.isupper() else "x"
        elif char.isdigit():
            shape_char = "d"
        else:
            shape_char = char
        if shape_char == last:
            seq += 1
        else:
            seq = 0
            last = shape_char
        if seq < 4:
            shape.append(shape_char)
    return "".join(shape)


_BASE_NORMS = None


def _norm(text: str) -> str:
    global _BASE_NORMS
    if _BASE_NORMS is None:
        from ._spacy_symbols import BASE_NORMS

        _BASE_NORMS = BASE_NORMS
    v = _BASE_NORMS.get(text)
    return v if v is not None else text.lower()


_FEATURES = {
    "ORTH": lambda s: s,
    "LOWER": lambda s: s.lower(),
    "NORM": _norm,
    "PREFIX": lambda s: s[:1],
    "SUFFIX": lambda s: s[-3:],
    "SHAPE": word_shape,
}


class MultiHashEmbed:
    """spaCy-style token embedding: each token's lexical features (by default NORM, PREFIX,
    SUFFIX, SHAPE) are hashed to spaCy's string ids and embedded by a :class:`HashEmbed` each
    (seeds 8, 9, 10, 11, ... as spaCy's ``MultiHashEmbed``); the vectors are concatenated.

    Feature rules (spaCy's lexeme attributes, ``spacy.lang.lex_attrs``):

    - ORTH: the text; LOWER: ``text.lower()``;
    - NORM: spaCy's base norm exceptions (``’`` -> ``'``, ``“`` -> ``"``, ...), else
      ``text.lower()``. Language lookup tables (spacy-lookups-data) and tokenizer-exception
      norms (``n't`` -> ``not`` inside ``don't``) are not applied;
    - PREFIX: the first character; SUFFIX: the last 3 characters (Unicode code points);
    - SHAPE: :func:`word_shape`.

    Feature strings become ids as spaCy's ``StringStore.add`` gives them: MurmurHash64A
    (seed 1) of the UTF-8 bytes, the reserved symbols' small ids (e.g. shape ``"X"``), 0 for
    ``""``. They equal ``nlp.vocab[text].norm`` / ``.prefix`` / ``.suffix`` / ``.shape``.

    This is the embedding part of spaCy's layer (``concatenate(*HashEmbed)``); spaCy's
    following Maxout + LayerNorm mixing layer is not included.

    width: vector width of every table; attrs: feature names; rows: table rows per feature;
    seeds: per-feature HashEmbed seeds (default 8, 9, ...); tables: optional float32 tables
    [rows[i], width] (e.g. from a trained spaCy pipeline, see :meth:`from_spacy`).
    Calling it: a list of token strings -> float32 [n_tokens, width * len(attrs)]; a list of
    lists of tokens -> a list of such arrays.
    """

    def __init__(self, width: int, attrs: Sequence[str] = ("NORM", "PREFIX", "SUFFIX", "SHAPE"),
                 rows: Sequence[int] = (5000, 1000, 2500, 2500), seeds: Optional[Sequence[int]] = None,
                 tables: Optional[Sequence] = None, random_state: int = 0):
        self.width = as_int(width, "width", minimum=1)
        attrs = [str(a).upper() for a in attrs]
        for a in attrs:
            if a not in _FEATURES:
                raise ValueError(f"attrs: unknown feature {a!r}; choose from {', '.join(_FEATURES)}")
        rows = list(rows)
        if len(rows) != len(attrs):
            raise ValueError(f"rows: needs one entry per attribute ({len(attrs)}), got {len(rows)}")
        if seeds is None:
            seeds = [8 + i for i in range(len(attrs))]
        seeds = list(seeds)
        if len(seeds) != len(attrs):
            raise ValueError(f"seeds: needs one entry per attribute ({len(attrs)}), got {len(seeds)}")
        if tables is not None and len(tables) != len(attrs):
            raise ValueError(f"tables: needs one per attribute ({len(attrs)}), got {len(tables)}")
        self.attrs = attrs
        self.embeds = [
            HashEmbed(self.width, rows[i], seed=seeds[i],
                      table=None if tables is None else tables[i], random_state=random_state + i)
            for i in range(len(attrs))
        ]

    @classmethod
    def from_spacy(cls, model, attrs: Sequence[str] = ("NORM", "PREFIX", "SUFFIX", "SHAPE")
                   ) -> "MultiHashEmbed":
        """Takes the HashEmbed tables and seeds of a spaCy ``MultiHashEmbed`` (or any thinc
        model holding its HashEmbed nodes, in column order; initialized)."""
        nodes = [n for n in model.walk() if n.name == "hashembed"]
        if len(nodes) != len(attrs):
            raise ValueError(f"model: found {len(nodes)} HashEmbed nodes, expected {len(attrs)}")
        tables = [n.ops.to_numpy(n.get_param("E")) for n in nodes]
        return cls(tables[0].shape[1], attrs, rows=[t.shape[0] for t in tables],
                   seeds=[n.attrs["seed"] for n in nodes], tables=tables)

    def features(self, tokens: Sequence[str]) -> np.ndarray:
        """uint64 [n_tokens, len(attrs)]: each token's feature ids (spaCy's string ids)."""
        if isinstance(tokens, str):
            raise TypeError("tokens: expected a list of token strings, got a str")
        tokens = list(tokens)
        for t in tokens:
            if not isinstance(t, str):
                raise TypeError(f"tokens: expected str items, got {type(t).__name__}")
        uniq = {}
        for t in tokens:
            if t not in uniq:
                uniq[t] = len(uniq)
        words = list(uniq)
        strings = [_FEATURES[a](w) for w in words for a in self.attrs]
        ids = hash_string(strings, spacy_compatible=True).reshape(len(words), len(self.attrs))
        index = np.fromiter((uniq[t] for t in tokens), np.int64, len(tokens))
        return np.ascontiguousarray(ids[index])

    def __call__(self, tokens):
        if not isinstance(tokens, str) and len(tokens) and isinstance(tokens[0], (list, tuple)):
            docs = [list(d) for d in tokens]
            flat = self([t for d in docs for t in d])
            bounds = np.cumsum([0] + [len(d) for d in docs])
            return [flat[bounds[i]:bounds[i + 1]] for i in range(len(docs))]
        feats = self.features(tokens)
        out = np.empty((feats.shape[0], self.width * len(self.embeds)), np.float32)
        for i, emb in enumerate(self.embeds):
            out[:, i * self.width:(i + 1) * self.width] = _core.hash_embed(
                np.ascontiguousarray(feats[:, i]), emb.seed, emb.table)
        return out

    def __repr__(self) -> str:
        rows = [e.n_rows for e in self.embeds]
        return f"MultiHashEmbed(width={self.width}, attrs={self.attrs}, rows={rows})"
