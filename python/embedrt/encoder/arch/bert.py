"""BERT (BertModel and the BertFor* heads): absolute positions, token types, post-LayerNorm
blocks with erf GELU. all-MiniLM, bge, e5, gte, snowflake-arctic-embed; multilingual-e5-small and
paraphrase-multilingual-MiniLM-L12-v2 (BERTs with XLM-R's sentencepiece tokenizer)."""
from __future__ import annotations

import numpy as np

from ._common import BERT_LAYER, check_bidirectional, embedding_params, find_prefix, getter, layer_params, sizes

PREFIXES = ("", "bert.", "model.", "encoder.", "0.auto_model.")


def config(raw: dict, path) -> dict:
    cfg = sizes(raw, path, max_position=512, type_vocab=2)
    check_bidirectional(raw, path)
    return cfg


def params(tensors: dict, cfg: dict, path) -> tuple:
    """Canonical params from a BertModel (or BertFor*) checkpoint's tensors."""
    from .._native_load import check_params

    prefix = find_prefix(tensors, "embeddings.word_embeddings.weight", PREFIXES, path, "BERT")
    h = cfg["hidden"]
    get = getter(tensors, prefix, path, layernorm_gamma=True)
    p = embedding_params(get, cfg)
    key = prefix + "embeddings.token_type_embeddings.weight"
    if key in tensors:
        rows = tensors[key].shape[0] if tensors[key].ndim else 0
        p["type"] = get("embeddings.token_type_embeddings.weight", (rows, h))
    else:
        p["type"] = np.zeros((1, h), np.float32)
    p.update(layer_params(get, tensors, prefix, cfg, BERT_LAYER, path))
    cfg = dict(cfg, family="bert")
    cfg["type_vocab"] = p["type"].shape[0]
    check_params(cfg, p)
    return cfg, p
