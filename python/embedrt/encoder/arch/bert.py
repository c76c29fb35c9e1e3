"""BERT (BertModel and the BertFor* heads): absolute positions, token types, post-LayerNorm
blocks with erf GELU. all-MiniLM, bge, e5, gte, snowflake-arctic-embed, multilingual-e5."""
from __future__ import annotations

import numpy as np

from ._common import find_prefix, getter

PREFIXES = ("", "bert.", "model.", "encoder.", "0.auto_model.")
_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "up": "intermediate.dense", "down": "output.dense"}


def config(raw: dict, path) -> dict:
    from .._native_load import NotRecognized

    act = raw.get("hidden_act", "gelu")
    if act not in ("gelu", "gelu_python"):
        raise NotRecognized(f"{path}: activation {act!r} is not supported (only erf GELU)")
    pet = raw.get("position_embedding_type", "absolute")
    if pet != "absolute":
        raise NotRecognized(f"{path}: position_embedding_type {pet!r} is not supported")
    try:
        return {
            "vocab": int(raw["vocab_size"]),
            "hidden": int(raw["hidden_size"]),
            "heads": int(raw["num_attention_heads"]),
            "intermediate": int(raw["intermediate_size"]),
            "layers": int(raw["num_hidden_layers"]),
            "max_position": int(raw.get("max_position_embeddings", 512)),
            "type_vocab": int(raw.get("type_vocab_size", 2)),
            "eps": float(raw.get("layer_norm_eps", 1e-12)),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise NotRecognized(f"{path}: missing or bad field ({e})") from None


def params(tensors: dict, cfg: dict, path) -> tuple:
    """Canonical params from a BertModel (or BertFor*) checkpoint's tensors."""
    from .._native_load import NotRecognized, check_params

    prefix = find_prefix(tensors, "embeddings.word_embeddings.weight", PREFIXES, path, "BERT")
    h, inter = cfg["hidden"], cfg["intermediate"]
    get0 = getter(tensors, prefix, path)

    def get(name, shape):
        return get0(name, shape, alt=(name.replace("LayerNorm.weight", "LayerNorm.gamma")
                                      .replace("LayerNorm.bias", "LayerNorm.beta"),))

    p = {"word": get("embeddings.word_embeddings.weight", (cfg["vocab"], h)),
         "pos": get("embeddings.position_embeddings.weight", (cfg["max_position"], h)),
         "emb_g": get("embeddings.LayerNorm.weight", (h,)), "emb_b": get("embeddings.LayerNorm.bias", (h,))}
    key = prefix + "embeddings.token_type_embeddings.weight"
    if key in tensors:
        p["type"] = get("embeddings.token_type_embeddings.weight", (tensors[key].shape[0], h))
    else:
        p["type"] = np.zeros((1, h), np.float32)
    shapes = {"up": (inter, h), "down": (h, inter)}
    for i in range(cfg["layers"]):
        pre = f"encoder.layer.{i}."
        for k, mod in _LAYER.items():
            w = shapes.get(k, (h, h))
            p[f"{i}.{k}_w"] = get(pre + mod + ".weight", w)
            p[f"{i}.{k}_b"] = get(pre + mod + ".bias", (w[0],))
        p[f"{i}.ln1_g"] = get(pre + "attention.output.LayerNorm.weight", (h,))
        p[f"{i}.ln1_b"] = get(pre + "attention.output.LayerNorm.bias", (h,))
        p[f"{i}.ln2_g"] = get(pre + "output.LayerNorm.weight", (h,))
        p[f"{i}.ln2_b"] = get(pre + "output.LayerNorm.bias", (h,))
    if f"{prefix}encoder.layer.{cfg['layers']}.attention.self.query.weight" in tensors:
        raise NotRecognized(f"{path}: holds more layers than config.json says")
    cfg = dict(cfg, family="bert")
    cfg["type_vocab"] = p["type"].shape[0]
    check_params(cfg, p)
    return cfg, p
