"""Encoder families of the native engine, one loader per family keyed by config.json's
``model_type`` (as CTranslate2's converters and llama.cpp's tensor-name map are).

A family module provides:

- ``config(raw, path) -> cfg``: the engine's config from config.json (the sizes, and the spec:
  ``position`` "absolute" | "offset" | "rotary" | "none", ``padding_idx``, ``type_vocab`` (0: no token
  types), ``attention_bias`` "none" | "relative", ``ffn`` "gelu" | "swiglu" | "geglu",
  ``rotary_base``, ``norm`` "post" | "pre", ``local_window``, ``global_every``,
  ``rotary_base_local`` (ModernBERT's local layers);
  ``linear_bias`` False for a family whose linear layers have no bias, ``up_bias`` False for
  one whose up product alone has none);
- ``params(tensors, cfg, path) -> (cfg, params)``: the canonical params (see _native_load)
  from a checkpoint's tensors, every shape checked against the config, the tensor named when
  one does not fit;
- for a family whose positions start past the padding index, ``offset_padding_idx(raw)``: that
  index, from config.json alone (what onnxruntime's inputs and the folder's length limit need
  to know too, whether or not the native engine runs the model);
- for a family whose config.json names the sizes otherwise than BERT, ``FIELDS``: BERT's name
  -> the family's (NomicBert's GPT2Config names: n_embd, n_positions);
- for a family with ``attention_bias`` "relative", ``relative_bias_table(cfg, params,
  max_tokens)``: the bias by distance (MPNet's buckets, JinaBert's ALiBi).

JinaBert's config.json says model_type "bert"; its ``position_embedding_type`` "alibi" picks
its loader (``family`` reads the config for that).

The numpy reference forward pass of every family is ``native.reference_forward``: it reads the
spec (the rotation from nomic_bert.py), so one function serves them all.
"""
from __future__ import annotations

from . import bert, jina_bert, modernbert, mpnet, nomic_bert, roberta

# RoBERTa and XLM-RoBERTa are one architecture (one loader, family "roberta"); "jina_bert" is
# the family of the BERT configs with ALiBi (model_type "bert")
FAMILIES = {"bert": bert, "mpnet": mpnet, "roberta": roberta, "xlm-roberta": roberta,
            "nomic_bert": nomic_bert, "modernbert": modernbert, "jina_bert": jina_bert}
SUPPORTED = tuple(FAMILIES)

# The engine's spec keys and their values for a BERT (what a config without them means).
SPEC_DEFAULTS = {"family": "bert", "position": "absolute", "padding_idx": 0, "attention_bias": "none",
                 "ffn": "gelu", "rotary_base": 10000.0, "norm": "post", "local_window": 0,
                 "global_every": 1, "rotary_base_local": 10000.0}
POSITIONS = ("absolute", "offset", "rotary", "none")
ATTENTION_BIASES = ("none", "relative")
FFNS = ("gelu", "swiglu", "geglu")
NORMS = ("post", "pre")


def spec_of(cfg: dict) -> dict:
    """The spec part of an engine config (BERT's values where it says nothing)."""
    return {k: cfg.get(k, v) for k, v in SPEC_DEFAULTS.items()}


def has_position_table(cfg: dict) -> bool:
    """Whether the embeddings add a row of a position table (absolute, offset), not rotary
    angles or nothing (ALiBi)."""
    return cfg.get("position", "absolute") in ("absolute", "offset")


def relative_bias_table(cfg: dict, params: dict, max_tokens: int):
    """The attention bias by distance j - i of a family with ``attention_bias`` "relative":
    [heads, 2 * max_tokens - 1] float32."""
    return FAMILIES[cfg.get("family", "bert")].relative_bias_table(cfg, params, max_tokens)


def max_tokens(cfg: dict) -> int:
    """The longest sequence the model's positions allow."""
    if cfg.get("position", "absolute") == "offset":
        return int(cfg["max_position"]) - int(cfg.get("padding_idx", 0)) - 1
    return int(cfg["max_position"])


def offset_padding_idx(raw: dict):
    """The padding index past which a config.json's positions start (MPNet, RoBERTa), or None
    for absolute positions (and for model_types no loader here knows)."""
    mod = FAMILIES.get(raw.get("model_type")) if isinstance(raw, dict) else None
    fn = getattr(mod, "offset_padding_idx", None)
    return None if fn is None else fn(raw)


def config_field(raw: dict, name: str) -> str:
    """The key under which a config.json of its model_type holds BERT's field `name`
    (hidden_size, max_position_embeddings): `name` itself unless the family names it otherwise."""
    mod = FAMILIES.get(raw.get("model_type")) if isinstance(raw, dict) else None
    return getattr(mod, "FIELDS", {}).get(name, name)


def position_limit(raw: dict, max_position: int) -> int:
    """The longest sequence a config.json with ``max_position`` position rows allows:
    max_position less the rows up to the padding index where positions start past it."""
    pad = offset_padding_idx(raw)
    return max_position if pad is None else max_position - pad - 1


def family(model_type, path, raw=None) -> object:
    """The family module of a model_type (None reads as BERT, as older configs do); with the
    config.json `raw`, a BERT with ALiBi positions is a JinaBert."""
    from .._native_load import NotRecognized

    if model_type in (None, "bert") and jina_bert.is_jina(raw):
        return jina_bert
    if model_type is None:
        return bert
    mod = FAMILIES.get(model_type)
    if mod is None:
        raise NotRecognized(f"{path}: model_type {model_type!r} is not an encoder family the native "
                            f"engine runs (supported: {', '.join(SUPPORTED)})")
    return mod
