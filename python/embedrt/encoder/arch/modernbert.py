"""ModernBERT (model_type "modernbert": ModernBertModel and the ModernBertFor* heads;
answerdotai/ModernBERT-base / -large, modernbert-embed, gte-modernbert). As transformers'
ModernBertModel computes it:

- embeddings: ``embeddings.tok_embeddings`` rows, no positions, no token types, LayerNorm
  ``embeddings.norm`` (bias-free, norm_bias false);
- per layer, pre-LayerNorm: x += Wo(attention(attn_norm(x))) (layer 0's attn_norm is the
  identity: no tensor), x += mlp.Wo(gelu(a) * b) with (a, b) the halves of mlp.Wi(mlp_norm(x))
  (GeGLU, erf GELU); ``attn.Wqkv`` [3 * hidden, hidden], q and k rotated (rotate_half) with
  the full-attention rope theta (global_rope_theta, 160000) on the global layers (every
  global_attn_every_n_layers-th, from layer 0) and the sliding one (local_rope_theta, 10000) on
  the others, which attend to keys within local_attention / 2 tokens; no biases;
- ``final_norm`` after the last layer.

Refused, naming the field: biases (attention_bias, mlp_bias, norm_bias true), another
activation, rope types other than "default" (scaling), a layer_types list that is not the
every-n pattern.
"""
from __future__ import annotations

import numpy as np

from ._common import find_prefix, getter, int_field

PREFIXES = ("", "model.", "0.auto_model.")
THETA = {"full_attention": 160000.0, "sliding_attention": 10000.0}  # ModernBertConfig.default_theta
OLD_THETA = {"full_attention": "global_rope_theta", "sliding_attention": "local_rope_theta"}


def _refuse(path, msg):
    from .._native_load import NotRecognized

    raise NotRecognized(f"{path}: {msg}")


def _theta(raw: dict, kind: str, path) -> float:
    rp = raw.get("rope_parameters")
    if rp is not None and not isinstance(rp, dict):
        _refuse(path, "rope_parameters is not a mapping")
    if raw.get("rope_scaling") is not None:
        _refuse(path, f"rope_scaling is {raw['rope_scaling']!r:.60}; only the default rope is supported")
    entry = (rp or {}).get(kind) or {}
    if not isinstance(entry, dict):
        _refuse(path, f"rope_parameters[{kind!r}] is not a mapping")
    rtype = entry.get("rope_type", "default")
    if rtype != "default":
        _refuse(path, f"rope_parameters[{kind!r}] rope_type is {rtype!r}; only 'default' is supported")
    v = entry.get("rope_theta", raw.get(OLD_THETA[kind], THETA[kind]))
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v <= 1:
        _refuse(path, f"the {kind} rope theta {v!r:.40} must be a number above 1")
    return float(v)


def config(raw: dict, path) -> dict:
    for key in ("attention_bias", "mlp_bias", "norm_bias"):
        if raw.get(key, False) is not False:
            _refuse(path, f"{key} is {raw[key]!r:.40}; the native engine runs ModernBERT without biases only")
    act = raw.get("hidden_activation", "gelu")
    if act != "gelu":
        _refuse(path, f"hidden_activation {act!r:.40} is not supported (only erf GELU, 'gelu')")
    if raw.get("is_decoder") not in (None, False) or raw.get("causal") not in (None, False):
        _refuse(path, "a causal ModernBERT is not supported (bidirectional encoders only)")
    try:
        sizes = {"vocab": int(raw["vocab_size"]), "hidden": int(raw["hidden_size"]),
                 "heads": int(raw["num_attention_heads"]), "intermediate": int(raw["intermediate_size"]),
                 "layers": int(raw["num_hidden_layers"]),
                 "max_position": int(raw.get("max_position_embeddings", 8192))}
        eps = float(raw.get("norm_eps", 1e-5))
    except (KeyError, TypeError, ValueError) as e:
        _refuse(path, f"missing or bad field ({e})")
    if min(sizes.values()) < 1 or not eps > 0:
        _refuse(path, "every size and norm_eps must be positive")
    if sizes["hidden"] % sizes["heads"] or (sizes["hidden"] // sizes["heads"]) % 2:
        _refuse(path, f"hidden_size {sizes['hidden']} does not split into {sizes['heads']} heads of even size")
    every = int_field(raw, "global_attn_every_n_layers", path, 3)
    if every < 1:
        _refuse(path, "global_attn_every_n_layers must be at least 1")
    pattern = ["sliding_attention" if i % every else "full_attention" for i in range(sizes["layers"])]
    types = raw.get("layer_types")
    if types is not None and list(types) != pattern:
        _refuse(path, f"layer_types {types!r:.120} is not the pattern of global_attn_every_n_layers {every}")
    window = int_field(raw, "local_attention", path, 128) // 2
    local = any(t == "sliding_attention" for t in pattern)
    if local and window < 1:
        _refuse(path, "local_attention must be at least 2")
    return dict(sizes, type_vocab=0, eps=eps, family="modernbert", position="rotary", padding_idx=0,
                attention_bias="none", ffn="geglu", norm="pre", linear_bias=False,
                rotary_base=_theta(raw, "full_attention", path),
                rotary_base_local=_theta(raw, "sliding_attention", path) if local else 10000.0,
                local_window=window if local else 0, global_every=every if local else 1)


def params(tensors: dict, cfg: dict, path) -> tuple:
    """Canonical params: word, emb_g, emb_b (zeros: bias-free), per layer q_w, k_w, v_w (the
    thirds of Wqkv), ao_w (attn.Wo), up_w / gate_w (the activated and the multiplying half of
    mlp.Wi), down_w (mlp.Wo), ln1_g/b (attn_norm, none in layer 0), ln2_g/b (mlp_norm);
    final_g, final_b (final_norm)."""
    from .._native_load import check_params

    prefix = find_prefix(tensors, "embeddings.tok_embeddings.weight", PREFIXES, path, "ModernBERT")
    h, inter, n = cfg["hidden"], cfg["intermediate"], cfg["layers"]
    get = getter(tensors, prefix, path)
    for key in tensors:
        if key.startswith(prefix) and key.endswith(".bias") and not key.startswith(prefix + "head") \
                and not key.startswith(prefix + "decoder") and not key.startswith(prefix + "classifier"):
            _refuse(path, f"tensor {key}: the config says this layer has no bias")
    zeros = np.zeros(h, np.float32)
    p = {"word": get("embeddings.tok_embeddings.weight", (cfg["vocab"], h)),
         "emb_g": get("embeddings.norm.weight", (h,)), "emb_b": zeros,
         "final_g": get("final_norm.weight", (h,)), "final_b": zeros}
    if prefix + "layers.0.attn_norm.weight" in tensors:
        _refuse(path, f"tensor {prefix}layers.0.attn_norm.weight: ModernBERT's first layer has no attn_norm")
    for i in range(n):
        pre = f"layers.{i}."
        qkv = get(pre + "attn.Wqkv.weight", (3 * h, h))
        p[f"{i}.q_w"], p[f"{i}.k_w"], p[f"{i}.v_w"] = (np.ascontiguousarray(qkv[j * h:(j + 1) * h])
                                                       for j in range(3))
        p[f"{i}.ao_w"] = get(pre + "attn.Wo.weight", (h, h))
        wi = get(pre + "mlp.Wi.weight", (2 * inter, h))
        p[f"{i}.up_w"], p[f"{i}.gate_w"] = np.ascontiguousarray(wi[:inter]), np.ascontiguousarray(wi[inter:])
        p[f"{i}.down_w"] = get(pre + "mlp.Wo.weight", (h, inter))
        if i > 0:
            p[f"{i}.ln1_g"], p[f"{i}.ln1_b"] = get(pre + "attn_norm.weight", (h,)), zeros
        p[f"{i}.ln2_g"], p[f"{i}.ln2_b"] = get(pre + "mlp_norm.weight", (h,)), zeros
    if f"{prefix}layers.{n}.attn.Wqkv.weight" in tensors:
        _refuse(path, "holds more layers than config.json says")
    check_params(cfg, p)
    return dict(cfg), p
