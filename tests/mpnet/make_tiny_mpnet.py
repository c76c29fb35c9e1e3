"""Regenerates the tiny random-weight MPNet checkpoints under tests/data/mpnet/.

Two sentence-transformers folders without any ONNX file, so the native engine reads their
safetensors checkpoints:

- ``tiny-mpnet``: an MPNetModel in one model.safetensors;
- ``tiny-mpnet-sharded``: an MPNetForMaskedLM (tensors under ``mpnet.``) saved in shards with
  model.safetensors.index.json.

Reference outputs, computed in PyTorch (fp32) by transformers' MPNet, go to reference.npz:
the normalized mean-pooled embeddings of the corpus texts (tokenized exactly as embedrt
tokenizes them), and the mean-pooled (not normalized) outputs of fixed random id sequences up to
the longest the positions allow (beyond the buckets' max_distance of 128).

This script needs torch and transformers, which are neither runtime nor test dependencies; it is
run by hand::

    python tests/mpnet/make_tiny_mpnet.py

and rewrites everything it owns (deterministically).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "data" / "mpnet"
sys.path.insert(0, str(HERE.parent / "export_corpus"))

import make_corpus as mc  # noqa: E402

SEED = 4321
MAX_POS = 202  # positions 2 .. 201: sequences of up to 200 tokens
PROBE_LENGTHS = (1, 2, 9, 17, 70, 130, 200)


def build_model(masked_lm: bool, seed: int):
    import torch
    from transformers import MPNetConfig, MPNetForMaskedLM, MPNetModel

    config = MPNetConfig(vocab_size=mc.VOCAB, hidden_size=mc.HIDDEN, num_hidden_layers=mc.LAYERS,
                         num_attention_heads=mc.HEADS, intermediate_size=mc.INTERMEDIATE,
                         max_position_embeddings=MAX_POS, hidden_act="gelu", layer_norm_eps=1e-5,
                         relative_attention_num_buckets=32, hidden_dropout_prob=0.0,
                         attention_probs_dropout_prob=0.0, pad_token_id=1)
    torch.manual_seed(seed)
    model = MPNetForMaskedLM(config) if masked_lm else MPNetModel(config, add_pooling_layer=False)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm.weight" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif "LayerNorm.bias" in name or "layer_norm.bias" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "relative_attention_bias" in name:  # large: a dropped bias shows at once
                p.copy_(1.5 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.6 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(0.8 * torch.randn(p.shape, generator=g))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.3 / p.shape[1] ** 0.5))
    model.eval()
    return model


def base(model):
    return getattr(model, "mpnet", model)


def pooled(model, ids: list, normalize: bool) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for x in ids:
            t = torch.from_numpy(np.asarray(x, np.int64))[None]
            h = base(model)(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state[0].double()
            v = h.mean(0)
            if normalize:
                v = v / v.norm()
            out.append(v.float().numpy())
    return np.stack(out)


def write(name: str, masked_lm: bool, seed: int, vocab: list, tok) -> None:
    folder = OUT / name
    model = build_model(masked_lm, seed)
    mc.write_folder(folder, mc.build_model(), tok, vocab)  # the sentence-transformers files
    shutil.rmtree(folder / "onnx")
    cfg = {k: v for k, v in sorted(model.config.to_dict().items())
           if k in ("attention_probs_dropout_prob", "bos_token_id", "eos_token_id", "hidden_act",
                    "hidden_dropout_prob", "hidden_size", "initializer_range", "intermediate_size",
                    "layer_norm_eps", "max_position_embeddings", "model_type",
                    "num_attention_heads", "num_hidden_layers", "pad_token_id",
                    "relative_attention_num_buckets", "vocab_size")}
    cfg["architectures"] = ["MPNetForMaskedLM" if masked_lm else "MPNetModel"]
    (folder / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    tmp = folder / "_save"
    model.save_pretrained(tmp, safe_serialization=True, max_shard_size="60KB" if masked_lm else "50GB")
    for f in tmp.iterdir():
        if f.name.endswith(".safetensors") or f.name.endswith(".index.json"):
            shutil.move(str(f), folder / f.name)
            (folder / f.name).chmod(0o644)
    shutil.rmtree(tmp)
    ids = mc.tokenize(folder / "tokenizer.json", mc.TEXTS)
    rng = np.random.default_rng(seed)
    probe = [rng.integers(0, mc.VOCAB, size=n).astype(np.int64) for n in PROBE_LENGTHS]
    probe[-1][5] = 1  # a padding id inside a sequence: its position stays at padding_idx
    np.savez(folder / "reference.npz", texts=np.array(mc.TEXTS), embeddings=pooled(model, ids, True),
             lengths=np.array([len(x) for x in ids], dtype=np.int64),
             probe_ids=np.concatenate(probe), probe_lengths=np.array(PROBE_LENGTHS, np.int64),
             probe_pooled=pooled(model, probe, False))
    print(f"{name}: {sum(f.stat().st_size for f in folder.rglob('*') if f.is_file()) // 1024} KB")


def main() -> int:
    vocab = mc._vocab()
    tok = mc.build_tokenizer(vocab)
    write("tiny-mpnet", False, SEED, vocab, tok)
    write("tiny-mpnet-sharded", True, SEED + 1, vocab, tok)
    return 0


if __name__ == "__main__":
    sys.exit(main())
