"""Shared pieces of the family loaders."""
from __future__ import annotations

import numpy as np


def find_prefix(tensors: dict, probe: str, prefixes, path, family: str) -> str:
    """The prefix under which a checkpoint stores the base model (``probe`` is a tensor every
    checkpoint of the family has)."""
    from .._native_load import NotRecognized

    for cand in prefixes:
        if cand + probe in tensors:
            return cand
    raise NotRecognized(f"{path}: no {probe}: not a {family} checkpoint")


def getter(tensors: dict, prefix: str, path):
    """get(name, shape): the tensor ``prefix + name`` as float32, its shape checked against
    the one the config implies; a missing or misfit tensor is named."""
    from .._native_load import NotRecognized

    def get(name, shape, alt=()):
        for cand in (name, *alt):
            key = prefix + cand
            if key in tensors:
                arr = tensors[key]
                if tuple(arr.shape) != tuple(shape):
                    raise NotRecognized(f"{path}: tensor {key} has shape {tuple(arr.shape)}, but "
                                        f"config.json implies {tuple(shape)}")
                if arr.dtype.kind != "f":
                    raise NotRecognized(f"{path}: tensor {key} holds {arr.dtype}, not floats")
                return np.asarray(arr, np.float32)
        raise NotRecognized(f"{path}: missing tensor {prefix + name}")

    return get


def int_field(raw: dict, key: str, path, default=None) -> int:
    from .._native_load import NotRecognized

    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 0:
        raise NotRecognized(f"{path}: {key!r} must be a non-negative integer, got {v!r:.60}")
    return v
