"""Sharded indexes: :func:`build_index` writes one index file per shard (the ordinary
``BinaryIndex`` / ``Int8Index`` / ``Index`` files) and a JSON manifest; :class:`ShardedIndex`
searches every shard and merges their top-k into exactly the results of one index over all rows,
ties included (ascending distance or descending score, ties by the smaller global id).

Shard i holds the contiguous global ids ``[offset_i, offset_i + rows_i)`` in input order.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np

KINDS = ("binary", "int8", "two-stage")
MANIFEST_FORMAT = "embedrt.ShardedIndex"
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.json"
_NO_ID = np.iinfo(np.int64).max


# ----------------------------------------------------------------------------- sources
def _count_and_batches(data, column: str, precision):
    """(number of rows, a factory of an iterator over 2-D arrays in input order)."""
    if isinstance(data, np.ndarray):
        arr = data if data.ndim == 2 else np.atleast_2d(data)
        return arr.shape[0], lambda: iter([arr])
    if isinstance(data, (list, tuple)) and data and all(isinstance(a, np.ndarray) for a in data):
        arrays = [np.atleast_2d(a) for a in data]
        return sum(a.shape[0] for a in arrays), lambda: iter(arrays)
    from ._worker import from_column

    if isinstance(data, (str, os.PathLike)):  # Parquet file(s): counted from their metadata
        import pyarrow.dataset as pads

        dataset = pads.dataset(os.fspath(data), format="parquet")
        _require(dataset.schema.names, column)
        n = dataset.count_rows()
        return n, lambda: (from_column(b.column(column), precision)
                           for b in dataset.to_batches(columns=[column]) if b.num_rows)
    mod = type(data).__module__
    if mod.startswith("pyarrow"):
        _require(data.schema.names, column)
        return data.num_rows, lambda: iter([from_column(data.column(column), precision)])
    if mod.startswith("ray.data"):
        return _ray_source(data, column, precision)
    if mod.startswith("pyspark"):
        return _spark_source(data, column, precision)
    if mod.startswith("pandas"):
        _require(list(data.columns), column)
        return len(data), lambda: iter([from_column(data[column].tolist(), precision)])
    raise TypeError(f"build_index: expected an array, a list of arrays, a Parquet path, a pyarrow "
                    f"Table, a pandas, Ray or Spark dataset; got {type(data).__name__}")


def _require(names, column):
    if column not in names:
        raise KeyError(f"column {column!r} is not in the input (columns: {', '.join(names)})")


def _ray_source(ds, column, precision):
    import ray.data

    from ._worker import from_column

    try:
        schema = ds.schema(fetch_if_missing=False)
    except TypeError:
        schema = ds.schema()
    if schema is not None:
        _require(list(schema.names), column)
    ctx = ray.data.DataContext.get_current()
    keep = ctx.execution_options.preserve_order
    ctx.execution_options.preserve_order = True  # global ids follow the input order
    try:
        mat = ds.select_columns([column]).materialize()
    finally:
        ctx.execution_options.preserve_order = keep
    n = mat.count()
    return n, lambda: (from_column(b.column(column), precision)
                       for b in mat.iter_batches(batch_format="pyarrow", batch_size=65536)
                       if b.num_rows)


def _spark_source(df, column, precision):
    from ._worker import from_column

    _require(df.columns, column)
    sel = df.select(column).persist()
    n = sel.count()

    def batches():
        try:
            buf = []
            for row in sel.toLocalIterator():
                buf.append(row[0])
                if len(buf) == 65536:
                    yield from_column(buf, precision)
                    buf = []
            if buf:
                yield from_column(buf, precision)
        finally:
            sel.unpersist()

    return n, batches


# ----------------------------------------------------------------------------- building
def _codes(x: np.ndarray, precision) -> np.ndarray:
    """Binary codes (ubinary, uint8 rows) from floats or from stored packed bits."""
    from ..quantize import quantize

    if x.dtype.kind == "f":
        return quantize(x, "ubinary")
    if x.dtype == np.int8:  # precision "binary": ubinary - 128
        return x.view(np.uint8) ^ np.uint8(0x80)
    if x.dtype == np.uint8:
        return x
    raise TypeError(f"kind='binary': expected float embeddings or packed bits, got dtype {x.dtype}")


def _floats(x: np.ndarray, kind: str) -> np.ndarray:
    if x.dtype.kind != "f":
        raise TypeError(f"kind={kind!r} needs float embeddings (precision float32 or float16), got "
                        f"dtype {x.dtype}")
    return np.ascontiguousarray(x, dtype=np.float32)


def _new_index(kind: str, width: int, nbits):
    from ..index import BinaryIndex, Index, Int8Index

    if kind == "binary":
        return BinaryIndex(nbits or width * 8)
    if kind == "int8":
        return Int8Index(width)
    return Index(width, coarse="binary", rescore="int8")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_index(data, kind: str = "binary", shards: int = 1, path=None, column: str = "embedding", *,
                nbits=None, precision=None, prefix: str = "shard") -> Path:
    """Writes a sharded index of `data` into the folder `path`; returns the manifest's path.

    data: float embeddings ``[n, dim]`` (or packed ``ubinary`` codes for kind="binary"), a list of
        such arrays, a Parquet file or folder, a pyarrow Table, a pandas DataFrame, a Ray Dataset
        or a Spark DataFrame with an embedding `column` (as :func:`embed_ray` / :func:`embed_spark`
        write it). Rows get global ids 0..n-1 in input order (a Ray Dataset is read with its order
        preserved; a Spark DataFrame in partition order).
    kind: "binary" (``BinaryIndex`` over sign bits / the given codes; `nbits` defaults to the
        float dimension or 8 x the code bytes), "int8" (``Int8Index``) or "two-stage" (``Index``:
        binary candidates rescored by int8).
    precision: for a bytes column, the precision it was embedded with ("ubinary" by default,
        or "binary").
    shards: the number of files; shard i holds a contiguous range of global ids, the sizes
        differ by at most one.

    The manifest (``manifest.json``) records kind, dim, the total, and per shard its file, row
    count, first global id, size and SHA-256.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(shards, bool) or not isinstance(shards, (int, np.integer)) or shards < 1:
        raise ValueError(f"shards must be a positive integer, got {shards!r}")
    if path is None:
        raise ValueError("build_index needs path= (the folder to write the shards and manifest into)")
    if precision not in (None, "ubinary", "binary", "float32", "float16"):
        raise ValueError(f"precision: expected 'ubinary' or 'binary' (for a bytes column), got {precision!r}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    n, batches = _count_and_batches(data, column, precision)
    if n == 0:
        raise ValueError("build_index: the input has no rows")
    shards = int(min(shards, n))
    sizes = [n // shards + (1 if i < n % shards else 0) for i in range(shards)]

    entries = []
    dim = None
    index = None
    filled = 0
    shard = 0
    offset = 0

    def finish():
        nonlocal index, filled, shard, offset
        name = f"{prefix}-{shard:05d}.idx"
        index.save(folder / name)
        entries.append({"file": name, "rows": filled, "offset": offset,
                        "bytes": (folder / name).stat().st_size, "sha256": _sha256(folder / name)})
        offset += filled
        shard += 1
        index, filled = None, 0

    seen = 0
    for x in batches():
        x = np.atleast_2d(x)
        if dim is None:  # binary: the float dimension, or 8 bits per code byte (or nbits)
            dim = int(nbits) if kind == "binary" and nbits else \
                int(x.shape[1] * (8 if kind == "binary" and x.dtype.kind != "f" else 1))
        if kind == "binary":
            x = _codes(x, precision)
        else:
            x = _floats(x, kind)
        seen += x.shape[0]
        start = 0
        while start < x.shape[0]:
            if index is None:
                index = _new_index(kind, x.shape[1], dim if kind == "binary" else None)
            take = min(sizes[shard] - filled, x.shape[0] - start)
            index.add(x[start:start + take])
            filled += take
            start += take
            if filled == sizes[shard]:
                finish()
    if seen != n:
        raise RuntimeError(f"build_index: counted {n} rows but read {seen}")
    manifest = {"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION, "kind": kind, "dim": dim,
                "ntotal": n, "shards": entries}
    out = folder / MANIFEST_NAME
    tmp = folder / (MANIFEST_NAME + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


# ----------------------------------------------------------------------------- searching
def _merge(primary: np.ndarray, gids: np.ndarray, k: int, descending: bool):
    """Row-wise top-k of (primary, gid) candidates: ascending primary (descending when asked),
    ties by the smaller global id."""
    key = -primary if descending else primary
    order = np.lexsort((gids, key), axis=-1)[:, :k]
    return np.take_along_axis(primary, order, axis=1), np.take_along_axis(gids, order, axis=1)


class ShardedIndex:
    """The shards written by :func:`build_index`, searched as one index.

    ``ShardedIndex.load(manifest, mmap=True)`` opens every shard (memory-mapped by default);
    ``search(queries, k)`` returns what one ``BinaryIndex`` / ``Int8Index`` / ``Index`` over all
    rows returns, with global ids: ``(distances int32, ids int64)`` for "binary" (queries:
    packed ubinary codes, or float embeddings whose sign bits are taken), ``(scores float32,
    ids int64)`` for "int8" and "two-stage".
    """

    def __init__(self, kind: str, dim: int, shards: list, offsets: list, files: list, manifest: dict):
        self.kind = kind
        self.dim = dim
        self.shards = shards
        self.offsets = np.asarray(offsets, np.int64)
        self.files = files
        self.manifest = manifest
        self._n = int(sum(len(s) for s in shards))

    @property
    def ntotal(self) -> int:
        return self._n

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return f"ShardedIndex(kind={self.kind!r}, dim={self.dim}, shards={len(self.shards)}, ntotal={self._n})"

    @classmethod
    def load(cls, manifest, mmap: bool = True, verify: bool = False) -> "ShardedIndex":
        """Opens the manifest (its path, or the folder holding ``manifest.json``) and its shards.
        Each file's size is checked against the manifest; verify=True also checks the SHA-256 of
        every file (reading it whole) and the files' own checksums."""
        from ..index import BinaryIndex, Index, Int8Index

        mpath = Path(manifest)
        if mpath.is_dir():
            mpath = mpath / MANIFEST_NAME
        try:
            m = json.loads(mpath.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise ValueError(f"{mpath}: not a ShardedIndex manifest ({e})") from None
        if not isinstance(m, dict) or m.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{mpath}: not a ShardedIndex manifest")
        if m.get("version") != MANIFEST_VERSION:
            raise ValueError(f"{mpath}: manifest version {m.get('version')!r} is not supported")
        kind = m.get("kind")
        if kind not in KINDS:
            raise ValueError(f"{mpath}: unknown kind {kind!r}")
        cls_ = {"binary": BinaryIndex, "int8": Int8Index, "two-stage": Index}[kind]
        shards, offsets, files = [], [], []
        expect = 0
        for i, e in enumerate(m.get("shards") or []):
            f = mpath.parent / e["file"]
            if not f.is_file():
                raise ValueError(f"{mpath}: shard {i} ({f}) is missing")
            if f.stat().st_size != e["bytes"]:
                raise ValueError(f"{mpath}: shard {i} ({f}) has {f.stat().st_size} bytes, the manifest "
                                 f"says {e['bytes']}")
            if verify and _sha256(f) != e["sha256"]:
                raise ValueError(f"{mpath}: shard {i} ({f}) does not match its SHA-256")
            if e["offset"] != expect:
                raise ValueError(f"{mpath}: shard {i} starts at id {e['offset']}, expected {expect}")
            index = cls_.load(f, mmap=mmap, verify=True if verify else None)
            if len(index) != e["rows"]:
                raise ValueError(f"{mpath}: shard {i} ({f}) holds {len(index)} rows, the manifest says "
                                 f"{e['rows']}")
            shards.append(index)
            offsets.append(expect)
            files.append(f)
            expect += e["rows"]
        if expect != m.get("ntotal"):
            raise ValueError(f"{mpath}: the shards hold {expect} rows, the manifest says {m.get('ntotal')}")
        if not shards:
            raise ValueError(f"{mpath}: no shards")
        return cls(kind, int(m["dim"]), shards, offsets, files, m)

    def verify(self) -> None:
        """Checks every shard file against its SHA-256 in the manifest and its own checksums."""
        for i, (f, e) in enumerate(zip(self.files, self.manifest["shards"])):
            if _sha256(f) != e["sha256"]:
                raise ValueError(f"shard {i} ({f}) does not match its SHA-256")
            self.shards[i].verify()

    def search(self, queries, k: int, rescore_multiplier: int = 4):
        """Top-k over all shards with global ids (see the class docstring)."""
        from .._checks import as_int

        k = as_int(k, "k", minimum=1)
        if self.kind == "binary":
            q = np.asarray(queries)
            if q.dtype.kind == "f":
                from ..quantize import quantize

                q = quantize(np.atleast_2d(q), "ubinary")
            return self._search_shards(np.atleast_2d(q), k, descending=False)
        if self.kind == "int8":
            return self._search_shards(queries, k, descending=True)
        return self._search_two_stage(queries, k, as_int(rescore_multiplier, "rescore_multiplier", minimum=1))

    def _search_shards(self, queries, k, descending: bool):
        """Each shard's top-k with its ids made global, merged (distances ascending, or scores
        descending; ties by the smaller global id)."""
        values, gids = [], []
        for shard, off in zip(self.shards, self.offsets):
            v, i = shard.search(queries, k)
            values.append(v)
            gids.append(i + off)
        v, g = np.concatenate(values, axis=1), np.concatenate(gids, axis=1)
        return _merge(v, g, min(k, self._n), descending=descending)

    def _search_two_stage(self, queries, k, mult):
        # One Index takes the c = k * mult nearest sign codes over all rows (ties by the smaller
        # id) and rescores them with int8. Here: each shard's c nearest, merged into the global c;
        # each shard rescores its members of that set; the rescored lists are merged.
        from .._checks import float_rows
        from ..index.two_stage import coarse_candidates, rescore

        q = float_rows(queries, "queries", self.dim)
        m = q.shape[0]
        k = min(k, self._n)
        if m == 0:
            return np.zeros((m, k), np.float32), np.zeros((m, k), np.int64)
        c = min(self._n, k * mult)
        cand, cscore, owner = [], [], []
        for s, (shard, off) in enumerate(zip(self.shards, self.offsets)):
            ids, sc = coarse_candidates(shard, q, min(c, len(shard)))
            cand.append(ids + off)
            cscore.append(sc)
            owner.append(np.full(ids.shape, s, np.int64))
        gsc, gid = _merge(np.concatenate(cscore, 1), np.concatenate(cand, 1), c, descending=True)
        order_owner = np.searchsorted(self.offsets, gid, side="right") - 1
        scores, gids = [], []
        for s, (shard, off) in enumerate(zip(self.shards, self.offsets)):
            local = np.where(order_owner == s, gid - off, -1).astype(np.int64)
            if not (local >= 0).any():
                continue
            sc, ids = rescore(shard, q, np.ascontiguousarray(local), min(k, c))
            valid = ids >= 0
            scores.append(np.where(valid, sc, -np.inf).astype(np.float32))
            gids.append(np.where(valid, ids + off, _NO_ID))
        s, g = _merge(np.concatenate(scores, 1), np.concatenate(gids, 1), k, descending=True)
        return s, g
