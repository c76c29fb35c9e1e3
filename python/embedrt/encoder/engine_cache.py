"""Where the native engine keeps what it converted, and how it knows it is still current.

A converted engine (the packed int8 weights, in embedrt's checksummed container, with the
gate's verdict in its metadata) is written automatically on first load:

- into ``<model folder>/embedrt/<source>.<precision>.embedrt`` when the folder is writable
  (the exported default model lives in the user cache, so its engine does too);
- else into the user cache, ``<cache>/engines/<key>.<precision>.embedrt``, keyed by the
  source file's content.

A model the gate rejected (or the recogniser refused) leaves a small JSON verdict in
``<cache>/verdicts/`` under the same key, so the next start goes to onnxruntime at once.

The source file (ONNX graph or safetensors checkpoint) is identified by its size, its
modification time and a digest of its first and last MiB; the full SHA-256 is kept too and
decides when only the times differ (a copy). The external weight files an ONNX graph names
are fingerprinted with it, and so are the folder's config.json (which says what a checkpoint's
tensors are, and which family, sizes and epsilon the engine reads a graph as) and a sharded
checkpoint's shards. Their names are kept relative to the source's folder (a graph in onnx/
names ``../config.json``).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

_EDGE = 1 << 20


def _sample_digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_EDGE))
        if size > 2 * _EDGE:
            f.seek(size - _EDGE)
            h.update(f.read(_EDGE))
    return h.hexdigest()[:32]


def full_digest(paths) -> str:
    h = hashlib.sha256()
    for p in paths:
        with open(p, "rb") as f:
            while True:
                chunk = f.read(1 << 22)
                if not chunk:
                    break
                h.update(chunk)
    return h.hexdigest()


def _file_entry(p: Path, name: str) -> dict:
    st = p.stat()
    return {"name": name, "size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns),
            "sample": _sample_digest(p, int(st.st_size))}


def fingerprint(source, data_files=()) -> dict:
    """{"name", "key", "files": [{name, size, mtime_ns, sample}]} of a model source file and
    the files that decide what it is (`data_files`, relative to the source's folder: an ONNX
    graph's external data, the folder's config.json, a checkpoint's shards). The key (the name
    of a cache entry) depends on the sizes and sampled bytes of those files."""
    source = Path(source)
    files = [_file_entry(source, source.name)] + [_file_entry(source.parent / n, str(n)) for n in data_files]
    key_src = json.dumps([files[0]["name"], files[0]["size"], files[0]["sample"]])
    if len(files) > 1:  # the files beside it decide too (a checkpoint's config.json, its shards)
        key_src += json.dumps([[f["name"], f["size"], f["sample"]] for f in files[1:]])
    return {"name": source.name, "files": files,
            "key": hashlib.sha256(key_src.encode()).hexdigest()[:24]}


def _paths(stored: dict, source: Path) -> list:
    return [source] + [source.parent / f["name"] for f in stored["files"][1:]]


def matches(stored, source, required=()) -> bool:
    """Whether a stored fingerprint (with its full digest) describes the source file and its
    companion files as they are now, and covers the `required` companions (a fingerprint
    written before a file decided what the source is does not)."""
    source = Path(source)
    try:
        names = [f["name"] for f in stored["files"]]
        now = fingerprint(source, names[1:])
    except (OSError, KeyError, TypeError, IndexError):
        return False
    if stored.get("key") != now["key"] or names[0] != source.name or not set(required) <= set(names[1:]):
        return False
    old = stored["files"]
    if any(o.get("size") != c["size"] or o.get("sample") != c["sample"]
           for o, c in zip(old, now["files"])):
        return False
    if all(o.get("mtime_ns") == c["mtime_ns"] for o, c in zip(old, now["files"])):
        return True
    # same sizes and sampled bytes, other times: a copy or a touch; decide by the full digest
    sha = stored.get("sha256")
    return bool(sha) and full_digest(_paths(stored, source)) == sha


def with_full_digest(fp: dict, source) -> dict:
    out = dict(fp)
    out["sha256"] = full_digest(_paths(fp, Path(source)))
    return out


def cache_root() -> Path:
    from .default_model import cache_dir

    return cache_dir()


def _may_write(folder: Path) -> bool:
    """Whether this process may write into an existing folder; a folder without write bits
    counts as read-only even for a superuser, whom os.access would let through."""
    try:
        mode = folder.stat().st_mode
    except OSError:
        return False
    return bool(mode & 0o222) and os.access(folder, os.W_OK | os.X_OK)


def _writable(folder: Path) -> bool:
    """Whether `folder` exists or can be made, and can be written (see _may_write)."""
    if not folder.exists():
        parent = folder.parent
        if not (parent.is_dir() and _may_write(parent)) and not _writable(parent):
            return False
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return False
    return _may_write(folder)


def engine_name(source, precision: str) -> str:
    source = Path(source)
    stem = source.stem if source.suffix == ".onnx" else source.name.replace(".", "-")
    return f"{stem}.{precision}.embedrt"


def engine_candidates(model_dir, source, precision: str, fp: dict) -> list:
    """Where a converted engine for this source may be, in the order they are looked at."""
    model_dir = Path(model_dir)
    return [model_dir / "embedrt" / engine_name(source, precision),
            cache_root() / "engines" / f"{fp['key']}.{precision}.embedrt"]


def engine_target(model_dir, source, precision: str, fp: dict) -> Path | None:
    """Where to write a converted engine: the model folder when writable, else the user cache
    (None when neither can be written)."""
    inside, cached = engine_candidates(model_dir, source, precision, fp)
    if _writable(inside.parent):
        return inside
    if _writable(cached.parent):
        return cached
    return None


def _verdict_path(fp: dict, precision: str) -> Path:
    return cache_root() / "verdicts" / f"{fp['key']}.{precision}.json"


def read_verdict(fp: dict, precision: str, source) -> dict | None:
    """A stored rejection for this source, or None."""
    path = _verdict_path(fp, precision)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not matches(data.get("source"), source):
        return None
    return data


def write_verdict(fp: dict, precision: str, source, verdict: dict) -> None:
    """Keeps a rejection (best effort: an unwritable cache only costs the next start time)."""
    path = _verdict_path(fp, precision)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = dict(verdict, source=with_full_digest(fp, source))
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    except OSError:
        pass


def forget_verdict(fp: dict, precision: str) -> None:
    try:
        _verdict_path(fp, precision).unlink()
    except OSError:
        pass
