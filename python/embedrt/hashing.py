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
"""
from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence

import numpy as np

from . import _core
from ._checks import as_float32, as_int

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

_U64_MAX = (1 << 64) - 1


# ------------------------------------------------------------------------------------------
# argument helpers
# ------------------------------------------------------------------------------------------

def _as_uint64(x, name: str, ndim: Optional[int] = 1) -> np.ndarray:
    """uint64 ids: a numpy uint64 array, or a list of non-negative Python ints."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint64:
            hint = ""
            if x.dtype.kind in "iu":
                hint = (f"; convert with {name}.astype(np.uint64) (negative values then wrap "
                        "around modulo 2**64, as thinc's as_contig does)")
            raise TypeError(f"{name}: expected a numpy array of dtype uint64, got {x.dtype}{hint}")
        arr = x
    elif isinstance(x, (list, tuple, range)):
        items = list(x)
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (numbers.Integral, np.integer)):
                if isinstance(v, (list, tuple, np.ndarray)):
                    continue  # nested rows: checked by numpy below
                raise TypeError(f"{name}: expected integers, got {type(v).__name__}")
        try:
            arr = np.array(items, dtype=np.uint64) if items else np.zeros(0, np.uint64)
        except OverflowError:
            raise ValueError(f"{name}: values must be in [0, 2**64); got a negative or larger "
                             "value") from None
        if arr.size and any(isinstance(v, (numbers.Integral, np.integer)) and int(v) < 0
                            for v in items):
            raise ValueError(f"{name}: values must be in [0, 2**64); got a negative value")
    else:
        raise TypeError(f"{name}: expected a numpy array of dtype uint64 (or a list of ints), "
                        f"got {type(x).__name__}")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name}: expected a {ndim}-D array, got shape {arr.shape}")
    return np.ascontiguousarray(arr)


def _as_seed(seed, name: str = "seed") -> int:
    seed = as_int(seed, name, minimum=0)
    if seed > 0xFFFFFFFF:
        raise ValueError(f"{name} must be < 2**32 (a uint32, as in thinc), got {seed}")
    return seed


def _aligned64(a: np.ndarray) -> np.ndarray:
    """``a`` itself when its data is 64-byte aligned, else an aligned copy (rows of tables
    then start on cache lines, so vector loads do not straddle two of them)."""
    if a.ctypes.data % 64 == 0:
        return a
    buf = np.empty(a.nbytes + 64, np.uint8)
    start = (-buf.ctypes.data) % 64
    out = buf[start:start + a.nbytes].view(a.dtype).reshape(a.shape)
    out[...] = a
    return out


# ------------------------------------------------------------------------------------------
# MurmurHash3 x64_128 (thinc)
# ------------------------------------------------------------------------------------------

def murmurhash3_128(keys, seed: int = 0) -> np.ndarray:
    """MurmurHash3 x64_128 of each uint64 key, as thinc's ``NumpyOps().hash(keys, seed)``
    (thinc's C function is named ``MurmurHash3_x86_128_uint64``, but its mixing is x64_128's
    over one 8-byte tail block).

    keys: uint64 [n] (a numpy uint64 array, or a list of ints in [0, 2**64)). Other integer
    dtypes raise TypeError: convert with ``keys.astype(np.uint64)``.
    seed: uint32.
    Returns uint32 [n, 4]: the low and high halves of h1, then of h2.
    """
    keys = _as_uint64(keys, "keys")
    return _core.murmurhash3_128(keys, _as_seed(seed))


# ------------------------------------------------------------------------------------------
# spaCy string hashes
# ------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------
# HashEmbed (thinc)
# ------------------------------------------------------------------------------------------

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
        self.seed = _as_seed(seed)
        self.column = None if column is None else as_int(column, "column", minimum=0)
        if table is None:
            table = _init_table(self.n_rows, self.n_out, random_state)
        table = as_float32(table, "table", ndim=2, finite=False)
        if table.shape != (self.n_rows, self.n_out):
            raise ValueError(f"table: expected shape ({self.n_rows}, {self.n_out}), "
                             f"got {table.shape}")
        self.table = _aligned64(table)

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
            return _as_uint64(ids, "ids", ndim=1)
        ids = _as_uint64(ids, "ids", ndim=2)
        if self.column >= ids.shape[1]:
            raise ValueError(f"ids: column {self.column} is out of range for shape {ids.shape}")
        return np.ascontiguousarray(ids[:, self.column])

    def __call__(self, ids) -> np.ndarray:
        ids = self._select(ids)
        return _core.hash_embed(ids, self.seed, self.table)

    def __repr__(self) -> str:
        col = "" if self.column is None else f", column={self.column}"
        return f"HashEmbed(n_out={self.n_out}, n_rows={self.n_rows}, seed={self.seed}{col})"


# ------------------------------------------------------------------------------------------
# MultiHashEmbed (spaCy)
# ------------------------------------------------------------------------------------------

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


# ------------------------------------------------------------------------------------------
# fastText subwords
# ------------------------------------------------------------------------------------------

def fasttext_subword_ids(words, minn: int = 3, maxn: int = 6, bucket: int = 2_000_000,
                         nwords: int = 0, as_list: bool = False):
    """fastText's subword (character n-gram) ids, as ``Dictionary::computeSubwords``.

    For each word, the n-grams of ``"<" + word + ">"`` with ``minn <= n <= maxn`` UTF-8
    characters (a byte ``(c & 0xC0) == 0x80`` never starts one; the 1-grams ``"<"`` and
    ``">"`` alone are skipped), in fastText's order (by start, then length), each
    ``nwords + fnv1a(ngram) % bucket`` with fastText's FNV-1a 32-bit hash over bytes
    sign-extended through int8.

    ``nwords`` is the model's vocabulary size (``len(model.words)``), so the ids index the
    input matrix directly. fastText's ``get_subwords(word)`` puts the word's own id first
    when the word is in the vocabulary; these ids are only the n-grams. fastText's
    end-of-sentence token ``"</s>"`` has no n-grams.

    words: a str or a sequence of str.
    Returns ``(ids, offsets)``: ids int64 flat, offsets int64 [len(words) + 1], word i's ids
    are ``ids[offsets[i]:offsets[i + 1]]`` (ready for :func:`embedding_bag`). With
    ``as_list=True``, a list of int64 arrays. A single str gives its int64 ids array.
    """
    minn = as_int(minn, "minn", minimum=0)
    maxn = as_int(maxn, "maxn", minimum=0)
    bucket = as_int(bucket, "bucket", minimum=1)
    if bucket >= 2 ** 31:
        raise ValueError(f"bucket must be < 2**31 (fastText's int32), got {bucket}")
    nwords = as_int(nwords, "nwords", minimum=0)
    single = isinstance(words, str)
    if single:
        words = [words]
    elif isinstance(words, (bytes, bytearray)):
        raise TypeError("words: expected str or a sequence of str, got bytes (decode it first)")
    if not isinstance(words, (list, tuple)):
        words = list(words)
    ids, offs = _core.fasttext_subwords(words, minn, maxn, bucket, nwords)
    if single:
        return ids
    if as_list:
        return [ids[offs[i]:offs[i + 1]] for i in range(len(words))]
    return ids, offs


# ------------------------------------------------------------------------------------------
# embedding_bag and QREmbed
# ------------------------------------------------------------------------------------------

_MODES = {"sum": 0, "mean": 1}
_QR_OPS = {"mult": 0, "add": 1, "concat": 2}


def _as_index_array(x, name: str) -> np.ndarray:
    """Any integer ids as int64 (uint64 values >= 2**63 are out of range for every table)."""
    if not isinstance(x, np.ndarray):
        x = np.asarray(x)
        if x.size == 0:
            x = x.astype(np.int64)
    if x.dtype.kind not in "iu" or x.dtype == np.bool_:
        raise TypeError(f"{name}: expected an integer array, got dtype {x.dtype}")
    if x.dtype == np.uint64 and x.size and x.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name}: value {int(x.max())} is out of range")
    return np.ascontiguousarray(x, dtype=np.int64)


def _bag_args(ids, offsets, mode, weights, include_last_offset):
    """Checked (ids int64 [n], offsets int64 [n_bags + 1], weights float32 [n] or None)."""
    if mode not in _MODES:
        raise ValueError(f"mode must be 'sum' or 'mean', got {mode!r}")
    ids = _as_index_array(ids, "ids")
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
        offs = _as_index_array(offsets, "offsets")
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
        self.q_table, self.r_table = _aligned64(q), _aligned64(r)

    def __call__(self, ids, offsets=None, mode: str = "sum", weights=None,
                 include_last_offset: bool = False) -> np.ndarray:
        if offsets is None and weights is None:
            ids = _as_index_array(ids, "ids")
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
