"""RoBERTa and XLM-RoBERTa (RobertaModel / XLMRobertaModel and their For* heads; model_type
"roberta" and "xlm-roberta", one architecture): BERT's post-LayerNorm blocks with erf GELU, and
positions past the padding index as HF's create_position_ids_from_input_ids makes them
(padding_idx = config.json's pad_token_id, 1 in every released checkpoint: the first position is
padding_idx + 1, a padding token takes padding_idx, so max_position_embeddings 514 allows 512
tokens). Token types: the table of type_vocab_size rows (1 in the released checkpoints) whose row
0 is added to every token, as HF adds it when no token_type_ids are given; a checkpoint without
the table runs without token types. The pooler and the heads (lm_head, classifier) are not read.
all-distilroberta-v1, all-roberta-large-v1, paraphrase-multilingual-mpnet-base-v2,
multilingual-e5-base and -large, bge-m3. (paraphrase-multilingual-MiniLM-L12-v2 and
multilingual-e5-small are BERTs with XLM-R's tokenizer: bert.py runs them.)"""
from __future__ import annotations

from ._common import (
    BERT_LAYER,
    check_bidirectional,
    embedding_params,
    find_prefix,
    getter,
    int_field,
    layer_params,
    sizes,
)

# RobertaModel / XLMRobertaModel saved as they are (sentence-transformers), under their For*
# heads ("roberta."), or wrapped
PREFIXES = ("", "roberta.", "model.", "0.auto_model.")
TYPES = "embeddings.token_type_embeddings.weight"


def config(raw: dict, path) -> dict:
    from .._native_load import NotRecognized

    cfg = sizes(raw, path, max_position=512, type_vocab=2)  # RobertaConfig's defaults
    check_bidirectional(raw, path)
    if raw.get("pad_token_id", 1) is None:
        raise NotRecognized(f"{path}: pad_token_id is null, but RoBERTa's positions count from it")
    pad = int_field(raw, "pad_token_id", path, 1)
    if pad >= cfg["vocab"]:
        raise NotRecognized(f"{path}: pad_token_id {pad} is not below vocab_size {cfg['vocab']}")
    if cfg["max_position"] <= pad + 1:
        raise NotRecognized(f"{path}: max_position_embeddings {cfg['max_position']} leaves no position "
                            f"past the padding index {pad}")
    if int_field(raw, "type_vocab_size", path, 2) < 1:
        raise NotRecognized(f"{path}: type_vocab_size 0 leaves no token-type row 0, which RoBERTa adds "
                            "to every token")
    cfg.update(family="roberta", position="offset", padding_idx=pad, attention_bias="none")
    return cfg


def offset_padding_idx(raw: dict):
    """pad_token_id (RobertaConfig's default 1), None when it is not an index."""
    v = raw.get("pad_token_id", 1)
    return v if isinstance(v, int) and not isinstance(v, bool) and v >= 0 else None


def params(tensors: dict, cfg: dict, path) -> tuple:
    """Canonical params (BERT's names; "type" only when the checkpoint has the table)."""
    from .._native_load import check_params

    prefix = find_prefix(tensors, "embeddings.word_embeddings.weight", PREFIXES, path, "RoBERTa")
    get = getter(tensors, prefix, path, layernorm_gamma=True)
    p = embedding_params(get, cfg)
    cfg = dict(cfg)
    if prefix + TYPES in tensors:
        p["type"] = get(TYPES, (cfg["type_vocab"], cfg["hidden"]))
    else:
        cfg["type_vocab"] = 0
    p.update(layer_params(get, tensors, prefix, cfg, BERT_LAYER, path))
    check_params(cfg, p)
    return cfg, p
