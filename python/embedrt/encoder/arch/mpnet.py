"""MPNet (MPNetModel, and MPNetForMaskedLM's base): positions past the padding index (1, as
HF's MPNetEmbeddings fixes it), no token types, and a bias per head on the attention scores from
a table of relative-position buckets (``encoder.relative_attention_bias``: [buckets, heads]),
computed once from the distances and shared by every layer. all-mpnet-base-v2,
multi-qa-mpnet-base, paraphrase-mpnet-base."""
from __future__ import annotations

import math

import numpy as np

from ._common import embedding_params, find_prefix, getter, int_field, layer_params, sizes

PREFIXES = ("", "mpnet.", "model.", "0.auto_model.")
PADDING_IDX = 1  # MPNetEmbeddings.padding_idx (not read from config.json there either)
MAX_DISTANCE = 128  # MPNetEncoder.relative_position_bucket's default
_LAYER = {"q": "attention.attn.q", "k": "attention.attn.k", "v": "attention.attn.v",
          "ao": "attention.attn.o", "up": "intermediate.dense", "down": "output.dense",
          "ln1": "attention.LayerNorm", "ln2": "output.LayerNorm"}


def config(raw: dict, path) -> dict:
    from .._native_load import NotRecognized

    cfg = sizes(raw, path, max_position=514)
    buckets = int_field(raw, "relative_attention_num_buckets", path, 32)
    if buckets < 2 or buckets % 2:
        raise NotRecognized(f"{path}: relative_attention_num_buckets must be an even number >= 2, "
                            f"got {buckets}")
    if cfg["max_position"] <= PADDING_IDX + 1:
        raise NotRecognized(f"{path}: max_position_embeddings {cfg['max_position']} leaves no position "
                            f"past the padding index {PADDING_IDX}")
    cfg.update(family="mpnet", position="offset", padding_idx=PADDING_IDX, attention_bias="relative",
               relative_buckets=buckets)
    return cfg


def offset_padding_idx(raw: dict) -> int:
    return PADDING_IDX


def params(tensors: dict, cfg: dict, path) -> tuple:
    """Canonical params (BERT's names, no "type"; "rel_bias": [buckets, heads])."""
    from .._native_load import NotRecognized, check_params

    prefix = find_prefix(tensors, "embeddings.word_embeddings.weight", PREFIXES, path, "MPNet")
    get = getter(tensors, prefix, path)
    p = embedding_params(get, cfg)
    p["rel_bias"] = get("encoder.relative_attention_bias.weight", (cfg["relative_buckets"], cfg["heads"]))
    p.update(layer_params(get, tensors, prefix, cfg, _LAYER, path))
    check_params(cfg, p)
    if not np.isfinite(p["rel_bias"]).all():
        raise NotRecognized(f"{path}: tensor {prefix}encoder.relative_attention_bias.weight holds NaN "
                            "or infinity")
    return dict(cfg), p


def relative_position_bucket(relative_position, num_buckets: int = 32,
                             max_distance: int = MAX_DISTANCE) -> np.ndarray:
    """HF MPNetEncoder.relative_position_bucket (bidirectional), in the same float32 operations
    (the logarithm's rounding decides the bucket at the boundaries)."""
    n = -np.asarray(relative_position, np.int64)
    half = num_buckets // 2
    ret = (n < 0).astype(np.int64) * half
    n = np.abs(n)
    max_exact = half // 2
    ratio = np.log(np.maximum(n, 1).astype(np.float32) / np.float32(max_exact))
    large = max_exact + (ratio / np.float32(math.log(max_distance / max_exact))
                         * np.float32(half - max_exact)).astype(np.int64)
    large = np.minimum(large, half - 1)
    return ret + np.where(n < max_exact, n, large)


def relative_bias_table(cfg: dict, params: dict, max_tokens: int) -> np.ndarray:
    """The engine's bias by distance: [heads, 2 * max_tokens - 1], entry (h, r + max_tokens - 1)
    the bias of head h for key j and query i with j - i = r."""
    r = np.arange(-(max_tokens - 1), max_tokens)
    buckets = relative_position_bucket(r, cfg.get("relative_buckets", 32))
    return np.ascontiguousarray(np.asarray(params["rel_bias"], np.float32)[buckets].T)

