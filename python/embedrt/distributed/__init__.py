"""Batch embedding of large corpora on the engines that already run them, and sharded indexes.

- :func:`embed_ray`: a ``ray.data.Dataset`` in, the same rows with an embedding column out
  (``map_batches`` over a pool of actors that each load the model once).
- :func:`embed_spark`: the same for a Spark DataFrame (``mapInPandas``; the model is loaded once
  per Python worker and cached there).
- :func:`embed_table`: the same in this process, over a ``pyarrow.Table`` (the CLI's local engine).
- :func:`build_index` writes one index file per shard plus a JSON manifest;
  :class:`ShardedIndex` loads it and searches every shard with the results of one index.

Ray and pyspark are imported only when their function is called
(``pip install "embedrt[distributed]"``).
"""
from __future__ import annotations

import importlib

_LAZY = {
    "embed_ray": ".ray_data",
    "embed_spark": ".spark",
    "embed_table": ".local",
    "build_index": ".sharded",
    "ShardedIndex": ".sharded",
    "EmbedOptions": "._worker",
    "ModelUnavailableError": "._worker",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'embedrt.distributed' has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
