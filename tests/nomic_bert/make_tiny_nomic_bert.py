"""Regenerates the tiny random-weight NomicBert checkpoint under tests/data/nomic_bert/.

``tiny-nomic-bert``: a sentence-transformers folder (Transformer, mean Pooling, Normalize; the
prompts of nomic-embed-text in config_sentence_transformers.json) without any ONNX file, so the
native engine reads its safetensors checkpoint. The config.json is spelled as the published
nomic-embed-text-v1.5 one (GPT2Config names: n_embd 32, n_head 4, n_layer 2, n_inner 48 -
which the published NomciBertGatedMLP rounds up to a width of 256 -, n_positions 64,
rotary_emb_base 1000, pad_vocab_size_multiple 64, type_vocab_size 2, layer_norm_epsilon 1e-12),
the tensors under the published names (``embeddings.word_embeddings.weight``, ``emb_ln.*``,
``encoder.layers.N.attn.Wqkv.weight``, ``...attn.out_proj.weight``, ``...mlp.fc11/fc12/fc2
.weight``, ``...norm1/norm2.*``). The tokenizer is the tiny BERT WordPiece one of
tests/data/mpnet/tiny-mpnet (600 pieces; the word table has the 640 rows the padding to a
multiple of 64 gives).

No transformers class runs the published remote code, so the reference outputs come from a
float64 numpy forward pass written here, straight from that code (modeling_hf_nomic_bert.py:
NomicBertEmbeddings, NomicBertRotaryEmbedding with its fp32 angles, apply_rotary_emb in the
non-interleaved layout, NomicBertAttention, NomciBertGatedMLP, the post-norm NomicBertBlock),
independent of embedrt's own reference. reference.npz holds:

- ``embeddings``: the normalized mean-pooled embeddings of ``texts`` (tokenized with the
  ``tokenizers`` package, truncated at n_positions, ``lengths`` tokens each), and
  ``query_embeddings``: the same with the "search_query: " prompt before each text;
- ``probe_hidden``: the last hidden states of fixed random id sequences (``probe_ids`` split by
  ``probe_lengths``, up to the 64 tokens the positions allow), ``probe_pooled`` their means.

Needs numpy, safetensors and tokenizers only; run by hand::

    python tests/nomic_bert/make_tiny_nomic_bert.py

It rewrites everything it owns (deterministically).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tiny_folder  # noqa: E402

OUT = tiny_folder.DATA / "nomic_bert" / "tiny-nomic-bert"

SEED = 1357
HIDDEN, HEADS, LAYERS, N_INNER, POSITIONS, BASE, MULTIPLE = 32, 4, 2, 48, 64, 1000, 64
EPS = 1e-12
PROMPTS = {"search_query": "search_query: ", "search_document": "search_document: ",
           "classification": "classification: ", "clustering": "clustering: "}


def config_json(vocab: int) -> dict:
    """config.json as nomic-embed-text-v1.5 spells it, at the tiny sizes."""
    return {
        "activation_function": "swiglu",
        "architectures": ["NomicBertModel"],
        "attn_pdrop": 0.0,
        "auto_map": {"AutoConfig": "nomic-ai/nomic-bert-2048--configuration_hf_nomic_bert.NomicBertConfig",
                     "AutoModel": "nomic-ai/nomic-bert-2048--modeling_hf_nomic_bert.NomicBertModel"},
        "bos_token_id": None,
        "causal": False,
        "dense_seq_output": True,
        "embd_pdrop": 0.0,
        "eos_token_id": None,
        "fused_bias_fc": True,
        "fused_dropout_add_ln": True,
        "initializer_range": 0.02,
        "layer_norm_epsilon": EPS,
        "max_trained_positions": 2048,
        "mlp_fc1_bias": False,
        "mlp_fc2_bias": False,
        "model_type": "nomic_bert",
        "n_embd": HIDDEN,
        "n_head": HEADS,
        "n_inner": N_INNER,
        "n_layer": LAYERS,
        "n_positions": POSITIONS,
        "pad_vocab_size_multiple": MULTIPLE,
        "parallel_block": False,
        "parallel_block_tied_norm": False,
        "prenorm": False,
        "qkv_proj_bias": False,
        "reorder_and_upcast_attn": False,
        "resid_pdrop": 0.0,
        "rotary_emb_base": BASE,
        "rotary_emb_fraction": 1.0,
        "rotary_emb_interleaved": False,
        "rotary_emb_scale_base": None,
        "rotary_scaling_factor": None,
        "scale_attn_by_inverse_layer_idx": False,
        "scale_attn_weights": True,
        "summary_activation": None,
        "summary_first_dropout": 0.0,
        "summary_proj_to_labels": True,
        "summary_type": "cls_index",
        "summary_use_proj": True,
        "torch_dtype": "float32",
        "transformers_version": "4.34.0",
        "type_vocab_size": 2,
        "use_cache": True,
        "use_flash_attn": True,
        "use_rms_norm": False,
        "use_xentropy": True,
        "vocab_size": vocab,
    }


def make_weights(rows: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    h = HIDDEN
    width = (N_INNER + 255) // 256 * 256  # NomciBertGatedMLP(multiple_of=256)

    def mat(n, k):
        return (rng.standard_normal((n, k)) * (1.3 / k ** 0.5)).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": (0.8 * rng.standard_normal((rows, h))).astype(np.float32),
         # large: a dropped row 0 shows at once
         "embeddings.token_type_embeddings.weight": (1.5 * rng.standard_normal((2, h))).astype(np.float32),
         "emb_ln.weight": (1.0 + 0.3 * rng.standard_normal(h)).astype(np.float32),
         "emb_ln.bias": (0.3 * rng.standard_normal(h)).astype(np.float32)}
    for i in range(LAYERS):
        pre = f"encoder.layers.{i}."
        # q and k large enough that the rotation moves the attention visibly
        w[pre + "attn.Wqkv.weight"] = np.concatenate([3.0 * mat(h, h), 3.0 * mat(h, h), mat(h, h)])
        w[pre + "attn.out_proj.weight"] = mat(h, h)
        w[pre + "mlp.fc11.weight"] = mat(width, h)
        w[pre + "mlp.fc12.weight"] = 2.0 * mat(width, h)
        w[pre + "mlp.fc2.weight"] = mat(h, width)
        for ln in ("norm1", "norm2"):
            w[pre + ln + ".weight"] = (1.0 + 0.3 * rng.standard_normal(h)).astype(np.float32)
            w[pre + ln + ".bias"] = (0.3 * rng.standard_normal(h)).astype(np.float32)
    return w


# --- the published forward pass, in float64 ---------------------------------------------------

def _layer_norm(x, g, b):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + EPS) * g + b


def _cos_sin(seqlen: int, dim: int):
    """NomicBertRotaryEmbedding._update_cos_sin_cache (pos_idx_in_fp32): inv_freq, t and their
    outer product in float32, then cos / sin (in float64 here, of the float32 angles)."""
    inv_freq = np.float32(1.0) / (np.float32(BASE) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))
    t = np.arange(seqlen, dtype=np.float32)
    freqs = np.outer(t, inv_freq).astype(np.float32)
    return np.cos(freqs.astype(np.float64)), np.sin(freqs.astype(np.float64))


def _rotate_half(x):
    x1, x2 = np.split(x, 2, axis=-1)
    return np.concatenate([-x2, x1], axis=-1)


def _apply_rotary_emb(x, cos, sin):
    """x: (seqlen, nheads, headdim); cos / sin (seqlen, headdim / 2), repeated '(2 d)'."""
    cos = np.concatenate([cos, cos], axis=-1)[:, None, :]
    sin = np.concatenate([sin, sin], axis=-1)[:, None, :]
    return x * cos + _rotate_half(x) * sin


def forward(w: dict, ids) -> np.ndarray:
    """NomicBertModel(input_ids[None]).last_hidden_state[0] for one unpadded sequence."""
    f = {k: v.astype(np.float64) for k, v in w.items()}
    ids = np.asarray(ids, np.int64)
    L, h, d = len(ids), HIDDEN, HIDDEN // HEADS
    x = f["embeddings.word_embeddings.weight"][ids] + f["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, f["emb_ln.weight"], f["emb_ln.bias"])
    cos, sin = _cos_sin(L, d)
    for i in range(LAYERS):
        pre = f"encoder.layers.{i}."
        qkv = (x @ f[pre + "attn.Wqkv.weight"].T).reshape(L, 3, HEADS, d)  # (three h d)
        q = _apply_rotary_emb(qkv[:, 0], cos, sin).transpose(1, 0, 2)
        k = _apply_rotary_emb(qkv[:, 1], cos, sin).transpose(1, 0, 2)
        v = qkv[:, 2].transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(d)
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        attn = (s @ v).transpose(1, 0, 2).reshape(L, h) @ f[pre + "attn.out_proj.weight"].T
        x = _layer_norm(attn + x, f[pre + "norm1.weight"], f[pre + "norm1.bias"])
        y = x @ f[pre + "mlp.fc11.weight"].T
        gate = x @ f[pre + "mlp.fc12.weight"].T
        y = y * (gate / (1.0 + np.exp(-gate)))  # y * silu(gate)
        mlp = y @ f[pre + "mlp.fc2.weight"].T
        x = _layer_norm(mlp + x, f[pre + "norm2.weight"], f[pre + "norm2.bias"])
    return x


# --- the folder -----------------------------------------------------------------------------------

def main() -> int:
    from safetensors.numpy import save_file

    vocab = tiny_folder.new_folder(OUT, POSITIONS)
    rows = (vocab + MULTIPLE - 1) // MULTIPLE * MULTIPLE
    tiny_folder.dump(OUT / "config.json", config_json(vocab))
    tiny_folder.write_modules(OUT, HIDDEN, POSITIONS, prompts=PROMPTS)
    weights = make_weights(rows, SEED)
    save_file(weights, str(OUT / "model.safetensors"), metadata={"format": "pt"})
    (OUT / "model.safetensors").chmod(0o644)
    ids = tiny_folder.save_reference(
        OUT, lambda x: forward(weights, x), POSITIONS, vocab, SEED,
        query_embeddings=[PROMPTS["search_query"] + t for t in tiny_folder.TEXTS])
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"tiny-nomic-bert: vocab {vocab} ({rows} rows), {size // 1024} KB, "
          f"longest text {max(len(x) for x in ids)} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
