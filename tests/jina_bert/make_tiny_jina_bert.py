"""Regenerates the tiny random-weight JinaBert checkpoint under tests/data/jina_bert/.

``tiny-jina-bert``: a sentence-transformers folder (Transformer, mean Pooling, Normalize)
without any ONNX file, so the native engine reads its safetensors checkpoint. The config.json
is spelled as the published jina-embeddings-v2-base-en one (model_type "bert",
position_embedding_type "alibi", feed_forward_type "geglu", the remote-code auto_map) at tiny
sizes: hidden 48, 6 heads (not a power of two, so the slopes take the published second branch),
2 layers, intermediate 40, max_position_embeddings 64, type_vocab_size 2. The tensors are under
the published JinaBertModel names (``embeddings.word_embeddings / token_type_embeddings /
LayerNorm``, ``encoder.layer.N.attention.self.query / key / value``,
``...attention.output.dense / LayerNorm``, ``...mlp.gated_layers.weight`` without bias,
``...mlp.wo``, ``...mlp.layernorm``; no position table). The tokenizer is the tiny BERT
WordPiece one of tests/data/mpnet/tiny-mpnet (600 pieces).

No transformers class runs the published remote code, so the reference outputs come from a
float64 numpy forward pass written here, straight from that code (jina-bert-implementation's
modeling_bert.py: JinaBertEmbeddings without position rows, JinaBertEncoder.rebuild_alibi_tensor
and its _get_alibi_head_slopes, BERT's self-attention with the ALiBi tensor added to the scaled
scores, BertSelfOutput, JinaBertGLUMLP with nn.GELU()), independent of embedrt's own
reference. reference.npz holds:

- ``embeddings``: the normalized mean-pooled embeddings of ``texts`` (tokenized with the
  ``tokenizers`` package, truncated at 64, ``lengths`` tokens each);
- ``probe_hidden``: the last hidden states of fixed random id sequences (``probe_ids`` split by
  ``probe_lengths``, up to the 64 tokens), ``probe_pooled`` their means.

Needs numpy, safetensors and tokenizers only; run by hand::

    python tests/jina_bert/make_tiny_jina_bert.py

It rewrites everything it owns (deterministically).
"""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tiny_folder  # noqa: E402

OUT = tiny_folder.DATA / "jina_bert" / "tiny-jina-bert"

SEED = 2468
HIDDEN, HEADS, LAYERS, INTER, POSITIONS = 48, 6, 2, 40, 64
EPS = 1e-12


def config_json(vocab: int) -> dict:
    """config.json as jina-embeddings-v2-base-en spells it, at the tiny sizes."""
    return {
        "_name_or_path": "jinaai/jina-bert-implementation",
        "architectures": ["JinaBertForMaskedLM"],
        "attention_probs_dropout_prob": 0.0,
        "auto_map": {"AutoConfig": "jinaai/jina-bert-implementation--configuration_bert.JinaBertConfig",
                     "AutoModel": "jinaai/jina-bert-implementation--modeling_bert.JinaBertModel",
                     "AutoModelForMaskedLM": "jinaai/jina-bert-implementation--modeling_bert.JinaBertForMaskedLM"},
        "classifier_dropout": None,
        "emb_pooler": "mean",
        "feed_forward_type": "geglu",
        "gradient_checkpointing": False,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "hidden_size": HIDDEN,
        "initializer_range": 0.02,
        "intermediate_size": INTER,
        "layer_norm_eps": EPS,
        "max_position_embeddings": POSITIONS,
        "model_max_length": POSITIONS,
        "model_type": "bert",
        "num_attention_heads": HEADS,
        "num_hidden_layers": LAYERS,
        "pad_token_id": 0,
        "position_embedding_type": "alibi",
        "torch_dtype": "float32",
        "transformers_version": "4.26.0",
        "type_vocab_size": 2,
        "vocab_size": vocab,
    }


def make_weights(vocab: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    h = HIDDEN

    def mat(n, k, scale=1.3):
        return (rng.standard_normal((n, k)) * (scale / k ** 0.5)).astype(np.float32)

    def vec(n, scale=0.3, base=0.0):
        return (base + scale * rng.standard_normal(n)).astype(np.float32)

    w = {"embeddings.word_embeddings.weight": (0.8 * rng.standard_normal((vocab, h))).astype(np.float32),
         # large: a dropped row 0 shows at once
         "embeddings.token_type_embeddings.weight": (1.5 * rng.standard_normal((2, h))).astype(np.float32),
         "embeddings.LayerNorm.weight": vec(h, base=1.0), "embeddings.LayerNorm.bias": vec(h)}
    for i in range(LAYERS):
        pre = f"encoder.layer.{i}."
        for name in ("query", "key", "value"):
            w[pre + f"attention.self.{name}.weight"] = mat(h, h, 3.0 if name != "value" else 1.3)
            w[pre + f"attention.self.{name}.bias"] = vec(h)
        w[pre + "attention.output.dense.weight"] = mat(h, h)
        w[pre + "attention.output.dense.bias"] = vec(h)
        w[pre + "attention.output.LayerNorm.weight"] = vec(h, base=1.0)
        w[pre + "attention.output.LayerNorm.bias"] = vec(h)
        w[pre + "mlp.gated_layers.weight"] = mat(2 * INTER, h, 2.0)
        w[pre + "mlp.wo.weight"] = mat(h, INTER)
        w[pre + "mlp.wo.bias"] = vec(h)
        w[pre + "mlp.layernorm.weight"] = vec(h, base=1.0)
        w[pre + "mlp.layernorm.bias"] = vec(h)
    return w


# --- the published forward pass, in float64 ---------------------------------------------------

_erf = np.vectorize(math.erf)


def _layer_norm(x, g, b):
    m = x.mean(-1, keepdims=True)
    v = ((x - m) ** 2).mean(-1, keepdims=True)
    return (x - m) / np.sqrt(v + EPS) * g + b


def _get_alibi_head_slopes(n_heads: int) -> list:
    def get_slopes_power_of_2(n):
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        ratio = start
        return [start * ratio ** i for i in range(n)]

    if math.log2(n_heads).is_integer():
        return get_slopes_power_of_2(n_heads)
    closest_power_of_2 = 2 ** math.floor(math.log2(n_heads))
    return (get_slopes_power_of_2(closest_power_of_2)
            + _get_alibi_head_slopes(2 * closest_power_of_2)[0::2][: n_heads - closest_power_of_2])


def rebuild_alibi_tensor(size: int) -> np.ndarray:
    """JinaBertEncoder.rebuild_alibi_tensor: [heads, size, size], float32 as the torch tensor."""
    context_position = np.arange(size)[:, None]
    memory_position = np.arange(size)[None, :]
    relative_position = np.abs(memory_position - context_position)
    slopes = np.asarray(_get_alibi_head_slopes(HEADS), np.float32) * np.float32(-1)
    return (slopes[:, None, None] * relative_position[None].astype(np.float32)).astype(np.float32)


def forward(w: dict, ids) -> np.ndarray:
    """JinaBertModel(input_ids[None]).last_hidden_state[0] for one unpadded sequence."""
    f = {k: v.astype(np.float64) for k, v in w.items()}
    ids = np.asarray(ids, np.int64)
    L, h, d = len(ids), HIDDEN, HIDDEN // HEADS
    x = f["embeddings.word_embeddings.weight"][ids] + f["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, f["embeddings.LayerNorm.weight"], f["embeddings.LayerNorm.bias"])
    alibi = rebuild_alibi_tensor(L).astype(np.float64)
    for i in range(LAYERS):
        pre = f"encoder.layer.{i}."

        def lin(name, t):
            return t @ f[pre + name + ".weight"].T + f[pre + name + ".bias"]

        q = lin("attention.self.query", x).reshape(L, HEADS, d).transpose(1, 0, 2)
        k = lin("attention.self.key", x).reshape(L, HEADS, d).transpose(1, 0, 2)
        v = lin("attention.self.value", x).reshape(L, HEADS, d).transpose(1, 0, 2)
        s = q @ k.transpose(0, 2, 1) / math.sqrt(d) + alibi
        s = np.exp(s - s.max(-1, keepdims=True))
        s = s / s.sum(-1, keepdims=True)
        ctx = (s @ v).transpose(1, 0, 2).reshape(L, h)
        x = _layer_norm(lin("attention.output.dense", ctx) + x, f[pre + "attention.output.LayerNorm.weight"],
                        f[pre + "attention.output.LayerNorm.bias"])
        # JinaBertGLUMLP
        hs = x @ f[pre + "mlp.gated_layers.weight"].T
        gated, non_gated = hs[:, :INTER], hs[:, INTER:]
        hs = 0.5 * gated * (1.0 + _erf(gated / math.sqrt(2.0))) * non_gated
        hs = lin("mlp.wo", hs)
        x = _layer_norm(hs + x, f[pre + "mlp.layernorm.weight"], f[pre + "mlp.layernorm.bias"])
    return x


# --- the folder -----------------------------------------------------------------------------------

def main() -> int:
    from safetensors.numpy import save_file

    vocab = tiny_folder.new_folder(OUT, POSITIONS)
    tiny_folder.dump(OUT / "config.json", config_json(vocab))
    tiny_folder.write_modules(OUT, HIDDEN, POSITIONS)
    weights = make_weights(vocab, SEED)
    save_file(weights, str(OUT / "model.safetensors"), metadata={"format": "pt"})
    (OUT / "model.safetensors").chmod(0o644)
    ids = tiny_folder.save_reference(OUT, lambda x: forward(weights, x), POSITIONS, vocab, SEED)
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"tiny-jina-bert: vocab {vocab}, {size // 1024} KB, longest text {max(len(x) for x in ids)} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
