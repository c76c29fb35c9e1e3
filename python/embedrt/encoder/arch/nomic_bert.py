"""NomicBert (model_type "nomic_bert": nomic-embed-text-v1 and v1.5, nomic-bert-2048; the hub's
remote code NomicBertModel, a GPT2Config with BERT's blocks). As that code computes it:

- embeddings: word rows (+ row 0 of the token-type table when type_vocab_size > 0, as no
  token_type_ids are given), no position table (rotary_emb_fraction 1), LayerNorm ``emb_ln``;
- per layer, post-LayerNorm (prenorm false): ``attn.Wqkv`` [3 * n_embd, n_embd] without bias;
  q and k of every head rotated (NomicBertRotaryEmbedding: angles t * base^(-2i / head_dim),
  computed in fp32, the non-interleaved rotate_half layout); softmax(q k^T / sqrt(head_dim)) v;
  ``attn.out_proj`` without bias; ``norm1`` of it plus the input; the SwiGLU MLP
  (NomciBertGatedMLP): fc2(fc11(x) * silu(fc12(x))), the gate being fc12, its width n_inner
  rounded up to a multiple of 256, no biases; ``norm2`` of it plus its input.
- eps: layer_norm_epsilon (GPT2Config's default 1e-5); n_positions the longest sequence (no
  table: the rotary angles are made for any position below it).

Anything else the config can ask for (prenorm, a parallel block, biases, a rotary fraction
other than 1, interleaved rotation, scale_base, dynamic NTK scaling, a causal mask, fewer key
heads, experts, another activation) is refused with the field named: the engine runs exactly
the published computation or nothing.
"""
from __future__ import annotations

import numpy as np

from ._common import find_prefix, getter, int_field

PREFIXES = ("", "bert.", "model.", "0.auto_model.")
MLP_MULTIPLE = 256  # NomciBertGatedMLP's multiple_of: the hidden width is rounded up to it
# Config aliases of the names other parts of embedrt read (GPT2Config's attribute_map).
FIELDS = {"hidden_size": "n_embd", "max_position_embeddings": "n_positions"}

# field -> the value the engine runs (a missing field takes NomicBertConfig's default, given
# second); any other value is refused, naming the field
_REQUIRED = {
    "prenorm": (False, False),
    "parallel_block": (False, False),
    "causal": (False, False),
    "qkv_proj_bias": (False, True),
    "mlp_fc1_bias": (False, True),
    "mlp_fc2_bias": (False, True),
    "rotary_emb_interleaved": (False, False),
    "use_rms_norm": (False, False),
    "rotary_head_dim": (False, False),
    "activation_function": ("swiglu", "gelu_new"),
}
_NONE = ("rotary_emb_scale_base", "rotary_scaling_factor")


def _refuse(path, msg):
    from .._native_load import NotRecognized

    raise NotRecognized(f"{path}: {msg}")


def _num(raw, key, path, default):
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v):
        _refuse(path, f"{key!r} must be a number, got {v!r:.60}")
    return float(v)


def mlp_width(n_inner, hidden: int) -> int:
    """NomciBertGatedMLP's hidden width: n_inner (None: int(8 * hidden / 3)) rounded up to a
    multiple of 256."""
    w = int(8 * hidden / 3) if n_inner is None else int(n_inner)
    return (w + MLP_MULTIPLE - 1) // MLP_MULTIPLE * MLP_MULTIPLE


def config(raw: dict, path) -> dict:
    for key, (want, default) in _REQUIRED.items():
        got = raw.get(key, default)
        if got != want or type(got) is not type(want):
            _refuse(path, f"{key} is {got!r:.40}{' (the default)' if key not in raw else ''}; the native "
                          f"engine runs NomicBert with {key} {want!r} only")
    for key in _NONE:
        if raw.get(key) is not None:
            _refuse(path, f"{key} is {raw[key]!r:.40}; the native engine runs NomicBert without it")
    frac = _num(raw, "rotary_emb_fraction", path, 0.0)
    if frac != 1.0:
        _refuse(path, f"rotary_emb_fraction is {frac:g}; the native engine rotates whole heads "
                      "(rotary_emb_fraction 1.0) only")
    base = _num(raw, "rotary_emb_base", path, 10000.0)
    if not base > 1.0:
        _refuse(path, f"rotary_emb_base {base:g} must be above 1")
    if raw.get("num_experts") not in (None, 0):
        _refuse(path, f"num_experts is {raw['num_experts']!r:.40}: mixture-of-experts layers are not supported")
    for key in ("n_embd", "n_head", "n_layer", "vocab_size"):
        if key not in raw:
            _refuse(path, f"missing field {key!r}")
    hidden = int_field(raw, "n_embd", path)
    heads = int_field(raw, "n_head", path)
    layers = int_field(raw, "n_layer", path)
    vocab = int_field(raw, "vocab_size", path)
    if hidden < 1 or heads < 1 or vocab < 1:
        _refuse(path, "n_embd, n_head and vocab_size must be positive")
    if hidden % heads:
        _refuse(path, f"n_embd {hidden} is not a multiple of n_head {heads}")
    if (hidden // heads) % 2:
        _refuse(path, f"the head size {hidden // heads} is odd; rotary positions pair its halves")
    kv = raw.get("num_heads_kv")
    if kv is not None and kv != heads:
        _refuse(path, f"num_heads_kv is {kv!r:.40}; only as many key/value heads as query heads are supported")
    mult = int_field(raw, "pad_vocab_size_multiple", path, 1)
    if mult > 1 and vocab % mult:
        vocab += mult - vocab % mult  # NomicBertModel pads the vocabulary so
    n_inner = raw.get("n_inner")
    if n_inner is not None:
        n_inner = int_field(raw, "n_inner", path)
    # n_positions (GPT2Config's default 1024; max_position_embeddings is its alias)
    pos_key = "n_positions" if "n_positions" in raw else "max_position_embeddings"
    positions = int_field(raw, pos_key, path, 1024)
    if positions < 1:
        positions = 2048  # NomicBertPreTrainedModel.from_pretrained's value for rotary models
    type_vocab = int_field(raw, "type_vocab_size", path, 2)
    return {
        "vocab": vocab, "hidden": hidden, "heads": heads, "intermediate": mlp_width(n_inner, hidden),
        "layers": layers, "max_position": positions, "type_vocab": type_vocab,
        "eps": _num(raw, "layer_norm_epsilon", path, 1e-5),
        "family": "nomic_bert", "position": "rotary", "padding_idx": 0, "attention_bias": "none",
        "rotary_base": base, "ffn": "swiglu", "linear_bias": False,
    }


def params(tensors: dict, cfg: dict, path) -> tuple:
    """Canonical params: word, type (when type_vocab > 0), emb_g, emb_b; per layer q_w, k_w,
    v_w (the thirds of Wqkv), ao_w, up_w (fc11), gate_w (fc12), down_w (fc2), ln1_g/b (norm1),
    ln2_g/b (norm2). No biases and no position table."""
    from .._native_load import check_params

    prefix = find_prefix(tensors, "embeddings.word_embeddings.weight", PREFIXES, path, "NomicBert")
    h, inter, n = cfg["hidden"], cfg["intermediate"], cfg["layers"]
    get = getter(tensors, prefix, path)
    for key in tensors:
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        if name.endswith(".bias") and any(s in name for s in (".attn.", ".mlp.")):
            _refuse(path, f"tensor {key}: the config says this linear layer has no bias "
                          "(qkv_proj_bias / mlp_fc1_bias / mlp_fc2_bias false)")
        if name.startswith("embeddings.position_embeddings"):
            _refuse(path, f"tensor {key}: a position table, but the config asks for rotary positions")
    p = {"word": get("embeddings.word_embeddings.weight", (cfg["vocab"], h)),
         "emb_g": get("emb_ln.weight", (h,)), "emb_b": get("emb_ln.bias", (h,))}
    if cfg["type_vocab"] > 0:
        p["type"] = get("embeddings.token_type_embeddings.weight", (cfg["type_vocab"], h))
    for i in range(n):
        pre = f"encoder.layers.{i}."
        qkv = get(pre + "attn.Wqkv.weight", (3 * h, h))
        p[f"{i}.q_w"], p[f"{i}.k_w"], p[f"{i}.v_w"] = (np.ascontiguousarray(qkv[j * h:(j + 1) * h])
                                                       for j in range(3))
        p[f"{i}.ao_w"] = get(pre + "attn.out_proj.weight", (h, h))
        p[f"{i}.up_w"] = get(pre + "mlp.fc11.weight", (inter, h))
        p[f"{i}.gate_w"] = get(pre + "mlp.fc12.weight", (inter, h))
        p[f"{i}.down_w"] = get(pre + "mlp.fc2.weight", (h, inter))
        for k, mod in (("ln1", "norm1"), ("ln2", "norm2")):
            p[f"{i}.{k}_g"] = get(pre + mod + ".weight", (h,))
            p[f"{i}.{k}_b"] = get(pre + mod + ".bias", (h,))
    if f"{prefix}encoder.layers.{n}.attn.Wqkv.weight" in tensors:
        _refuse(path, "holds more layers than config.json says")
    check_params(cfg, p)
    return dict(cfg), p


def rotary_tables(base: float, head_dim: int, n: int) -> tuple:
    """(cos, sin) [n, head_dim / 2] as NomicBertRotaryEmbedding makes them: inv_freq = 1 /
    base^(arange(0, d, 2) / d) and the angles t * inv_freq in fp32, then cos and sin (rounded
    to fp32, as the engine holds them)."""
    exps = np.arange(0, head_dim, 2, dtype=np.float32) / np.float32(head_dim)
    inv = np.float32(1.0) / (np.float32(base) ** exps)
    ang = np.outer(np.arange(n, dtype=np.float32), inv).astype(np.float32)
    a64 = ang.astype(np.float64)
    return np.cos(a64).astype(np.float32), np.sin(a64).astype(np.float32)


def rotate(x: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """x [..., L, d] rotated per position (cos / sin [L, d / 2]) in the rotate_half layout."""
    half = x.shape[-1] // 2
    a, b = x[..., :half], x[..., half:]
    c, s = np.asarray(cos, np.float64), np.asarray(sin, np.float64)
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)
