"""One checkpoint reader: a safetensors file, or a sharded one (``model.safetensors.index.json``
naming its shards in ``weight_map``)."""
from __future__ import annotations

import json
from pathlib import Path

INDEX_NAME = "model.safetensors.index.json"


def shard_names(index_path) -> list:
    """The shard files an index names (in their first order), each checked to be a plain file
    name beside the index; a missing shard is named."""
    from .._native_load import NotRecognized

    index_path = Path(index_path)
    try:
        raw = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        raise NotRecognized(f"{index_path}: cannot be read ({e})") from None
    wm = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(wm, dict) or not wm or not all(isinstance(v, str) for v in wm.values()):
        raise NotRecognized(f"{index_path}: no weight_map of tensor names to shard files")
    names = list(dict.fromkeys(wm.values()))
    for n in names:
        if Path(n).name != n or n in ("", ".", ".."):
            raise NotRecognized(f"{index_path}: shard {n!r} is not a file beside the index")
        if not (index_path.parent / n).is_file():
            raise NotRecognized(f"{index_path}: the shard {n} is missing")
    return names


def read_tensors(path) -> dict:
    """name -> numpy array (floating tensors as float32) of a safetensors file or a sharded
    checkpoint's index; a malformed file is NotRecognized, naming it."""
    from .. import safetensors_io
    from .._native_load import NotRecognized

    path = Path(path)
    files = [path] if path.name != INDEX_NAME else [path.parent / n for n in shard_names(path)]
    out = {}
    for f in files:
        try:
            part = safetensors_io.read_safetensors(f)
        except safetensors_io.SafetensorsError as e:
            raise NotRecognized(str(e)) from None
        for k in part:
            if k in out:
                raise NotRecognized(f"{f}: tensor {k} is in another shard too")
        out.update(part)
    return out
