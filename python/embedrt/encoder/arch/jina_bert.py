"""JinaBert (jina-embeddings-v2-small-en / -base-en and their kin: config.json's model_type
"bert" with ``position_embedding_type`` "alibi" and ``feed_forward_type`` "geglu"; the hub's
remote code JinaBertModel of jina-bert-implementation). As that code computes it:

- embeddings: word rows + a token-type row (row 0 unless token_type_ids are given), no position
  table, LayerNorm (``embeddings.LayerNorm``);
- per layer, BERT's post-LayerNorm attention (``attention.self.query / key / value`` and
  ``attention.output.dense`` with biases, ``attention.output.LayerNorm`` of it plus the input),
  with ALiBi on the scores: after the 1 / sqrt(head_dim) scaling, head h adds
  -slope_h * |j - i| (symmetric, every layer the same), the slopes of ``_get_alibi_head_slopes``
  (2^(-8 (h + 1) / n) for n a power of two; else those of the power of two below, then every
  other one of twice it);
- the GeGLU MLP (JinaBertGLUMLP): ``mlp.gated_layers`` [2 * intermediate, hidden] without bias,
  gelu(first half) * second half (``nn.GELU()``: erf), ``mlp.wo`` with bias, ``mlp.layernorm``
  of it plus the MLP's input.
- eps: layer_norm_eps; max_position_embeddings the longest sequence (no table: ALiBi is made
  for any distance below it).

Anything else (another feed_forward_type, the qk-post-norm variant's ``layer_norm_q / k``, a
decoder, cross-attention) is refused with the field or tensor named.
"""
from __future__ import annotations

import math

import numpy as np

from ._common import find_prefix, getter, sizes

PREFIXES = ("", "bert.", "model.", "0.auto_model.")
MAX_POSITIONS = 1 << 16  # the ALiBi table holds heads * (2 * positions - 1) floats
_LAYER = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
          "ao": "attention.output.dense", "ln1": "attention.output.LayerNorm"}


def _refuse(path, msg):
    from .._native_load import NotRecognized

    raise NotRecognized(f"{path}: {msg}")


def is_jina(raw: dict) -> bool:
    """Whether a config.json of model_type "bert" (or none) describes a JinaBert."""
    return isinstance(raw, dict) and raw.get("position_embedding_type") == "alibi"


def config(raw: dict, path) -> dict:
    fft = raw.get("feed_forward_type", "original")
    if fft != "geglu":
        _refuse(path, f"feed_forward_type is {fft!r:.40}; the native engine runs JinaBert with "
                      "feed_forward_type 'geglu' only")
    for key in ("is_decoder", "add_cross_attention"):
        if raw.get(key) not in (None, False):
            _refuse(path, f"{key} is {raw[key]!r:.40}: the native engine runs bidirectional encoders only")
    cfg = sizes(dict(raw, hidden_act="gelu"), path, max_position=512, type_vocab=2)  # the GLU's nn.GELU()
    if cfg["max_position"] < 1 or cfg["max_position"] > MAX_POSITIONS:
        _refuse(path, f"max_position_embeddings {cfg['max_position']} is outside [1, {MAX_POSITIONS}]")
    if cfg["heads"] < 1 or cfg["hidden"] < 1 or cfg["hidden"] % cfg["heads"]:
        _refuse(path, f"hidden_size {cfg['hidden']} is not a positive multiple of num_attention_heads "
                      f"{cfg['heads']}")
    cfg.update(family="jina_bert", position="none", padding_idx=0, attention_bias="relative", ffn="geglu",
               up_bias=False)
    return cfg


def params(tensors: dict, cfg: dict, path) -> tuple:
    """Canonical params: word, type, emb_g, emb_b; per layer BERT's attention (q, k, v, ao with
    biases, ln1), up_w / gate_w (the halves of gated_layers), down_w / down_b (wo), ln2
    (mlp.layernorm). No position table and no up bias."""
    from .._native_load import check_params

    prefix = find_prefix(tensors, "embeddings.word_embeddings.weight", PREFIXES, path, "JinaBert")
    h, inter, n = cfg["hidden"], cfg["intermediate"], cfg["layers"]
    get = getter(tensors, prefix, path, layernorm_gamma=True)
    for key in tensors:
        name = key[len(prefix):] if key.startswith(prefix) else None
        if name is None:
            continue
        if name.startswith("embeddings.position_embeddings"):
            _refuse(path, f"tensor {key}: a position table, but the config asks for ALiBi")
        if ".layer_norm_q." in name or ".layer_norm_k." in name:
            _refuse(path, f"tensor {key}: a LayerNorm of q or k (the qk-post-norm variant), which the "
                          "native engine does not run")
        if name.endswith("mlp.gated_layers.bias"):
            _refuse(path, f"tensor {key}: gated_layers has no bias in JinaBert")
        if name.startswith(f"encoder.layer.{n}."):
            _refuse(path, "holds more layers than config.json says")
    p = {"word": get("embeddings.word_embeddings.weight", (cfg["vocab"], h)),
         "emb_g": get("embeddings.LayerNorm.weight", (h,)), "emb_b": get("embeddings.LayerNorm.bias", (h,))}
    p["type"] = get("embeddings.token_type_embeddings.weight", (cfg["type_vocab"], h))
    for i in range(n):
        pre = f"encoder.layer.{i}."
        for k in ("q", "k", "v", "ao"):
            p[f"{i}.{k}_w"] = get(pre + _LAYER[k] + ".weight", (h, h))
            p[f"{i}.{k}_b"] = get(pre + _LAYER[k] + ".bias", (h,))
        p[f"{i}.ln1_g"] = get(pre + _LAYER["ln1"] + ".weight", (h,))
        p[f"{i}.ln1_b"] = get(pre + _LAYER["ln1"] + ".bias", (h,))
        gated = get(pre + "mlp.gated_layers.weight", (2 * inter, h))
        p[f"{i}.up_w"] = np.ascontiguousarray(gated[:inter])     # gelu'd
        p[f"{i}.gate_w"] = np.ascontiguousarray(gated[inter:])   # the multiplier
        p[f"{i}.down_w"] = get(pre + "mlp.wo.weight", (h, inter))
        p[f"{i}.down_b"] = get(pre + "mlp.wo.bias", (h,))
        p[f"{i}.ln2_g"] = get(pre + "mlp.layernorm.weight", (h,))
        p[f"{i}.ln2_b"] = get(pre + "mlp.layernorm.bias", (h,))
    check_params(cfg, p)
    return dict(cfg), p


def alibi_slopes(heads: int) -> list:
    """``_get_alibi_head_slopes`` of the published code (Python floats, as it computes them)."""
    def power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start * start ** i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    closest = 2 ** math.floor(math.log2(heads))
    return power_of_2(closest) + alibi_slopes(2 * closest)[0::2][:heads - closest]


def relative_bias_table(cfg: dict, params: dict, max_tokens: int) -> np.ndarray:
    """The engine's bias by distance: [heads, 2 * max_tokens - 1], entry (h, r + max_tokens - 1)
    = -slope_h * |r| in float32 (the published float32 tensor: slopes * -1 times the distance)."""
    slopes = np.asarray(alibi_slopes(cfg["heads"]), np.float32) * np.float32(-1)
    r = np.abs(np.arange(-(max_tokens - 1), max_tokens)).astype(np.float32)
    return np.ascontiguousarray(slopes[:, None] * r[None, :])
