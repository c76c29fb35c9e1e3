"""Encoder families of the native engine, one loader per family keyed by config.json's
``model_type`` (as CTranslate2's converters and llama.cpp's tensor-name map are).

A family module provides:

- ``config(raw, path) -> cfg``: the engine's config from config.json (the sizes, and the spec:
  ``position`` "absolute" | "offset", ``padding_idx``, ``type_vocab`` (0: no token types),
  ``attention_bias`` "none" | "relative");
- ``params(tensors, cfg, path) -> (cfg, params)``: the canonical params (see _native_load)
  from a checkpoint's tensors, every shape checked against the config, the tensor named when
  one does not fit.

The numpy reference forward pass of every family is ``native.reference_forward``: it reads the
spec, so one function serves them all.
"""
from __future__ import annotations

from . import bert, mpnet

FAMILIES = {"bert": bert, "mpnet": mpnet}
SUPPORTED = tuple(FAMILIES)

# The engine's spec keys and their values for a BERT (what a config without them means).
SPEC_DEFAULTS = {"family": "bert", "position": "absolute", "padding_idx": 0, "attention_bias": "none"}


def spec_of(cfg: dict) -> dict:
    """The spec part of an engine config (BERT's values where it says nothing)."""
    return {k: cfg.get(k, v) for k, v in SPEC_DEFAULTS.items()}


def max_tokens(cfg: dict) -> int:
    """The longest sequence the model's positions allow."""
    if cfg.get("position", "absolute") == "offset":
        return int(cfg["max_position"]) - int(cfg.get("padding_idx", 0)) - 1
    return int(cfg["max_position"])


def family(model_type, path) -> object:
    """The family module of a model_type (None reads as BERT, as older configs do)."""
    from .._native_load import NotRecognized

    if model_type is None:
        return bert
    mod = FAMILIES.get(model_type)
    if mod is None:
        raise NotRecognized(f"{path}: model_type {model_type!r} is not an encoder family the native "
                            f"engine runs (supported: {', '.join(SUPPORTED)})")
    return mod
