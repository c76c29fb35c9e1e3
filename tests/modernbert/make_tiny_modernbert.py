"""Regenerates the tiny random-weight ModernBERT checkpoint under tests/data/modernbert/.

``tiny-modernbert``: a sentence-transformers folder (Transformer, mean Pooling, Normalize)
without any ONNX file, so the native engine reads its safetensors checkpoint: a transformers
ModernBertModel (hidden 32, 4 heads, 4 layers, intermediate 48, 128 positions, local_attention 8
(keys within 4 tokens on the local layers 1 and 2, layers 0 and 3 global with
global_attn_every_n_layers 3), global / local rope theta 160000 / 10000, no biases), saved by
save_pretrained, with the tiny BERT WordPiece tokenizer of tests/data/mpnet/tiny-mpnet ([CLS] 2,
[SEP] 3, [PAD] 0 set as its cls / sep / pad ids).

Reference outputs, computed in PyTorch by transformers (fp32, eager attention), go to
reference.npz: ``embeddings``, the normalized mean-pooled embeddings of ``texts`` (tokenized as
embedrt tokenizes them, ``lengths`` tokens each, checked here to equal a padded batch), and
``probe_hidden``, the last hidden states of fixed random id sequences (``probe_ids`` split by
``probe_lengths``, up to the 128 tokens the positions allow), ``probe_pooled`` their means.

Needs torch and transformers (neither is a runtime or test dependency); run by hand::

    python tests/modernbert/make_tiny_modernbert.py
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import tiny_folder  # noqa: E402

OUT = tiny_folder.DATA / "modernbert" / "tiny-modernbert"

SEED = 8642
HIDDEN, HEADS, LAYERS, INTERMEDIATE, POSITIONS, LOCAL = 32, 4, 4, 48, 128, 8
PROBE_LENGTHS = (1, 2, 5, 9, 17, 40, 128)

TEXTS = [
    "",
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "!!! ??? ...",
    "a",
    "Search for the answer to the question",
    "dog dog dog dog dog dog dog dog dog dog",
    "UPPER CASE WORDS STAY UPPER",
    "numbers 1 2 3 42 and 2024",
    " ".join(["the river runs through the old city"] * 40),   # truncated at the limit
    "walking talking singing dancing",
    "a b c d e f g h i j k l m n o p",
    "the",
    "Thank you very much for the book, see you tomorrow morning!",
    "green trees and blue sky over the mountain sea",
]


def build_model(vocab: int, seed: int):
    import torch
    import transformers

    config = transformers.ModernBertConfig(
        vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS, num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE, max_position_embeddings=POSITIONS, local_attention=LOCAL,
        global_attn_every_n_layers=3, global_rope_theta=160000.0, local_rope_theta=10000.0,
        norm_eps=1e-5, norm_bias=False, attention_bias=False, mlp_bias=False, hidden_activation="gelu",
        pad_token_id=0, cls_token_id=2, sep_token_id=3, bos_token_id=2, eos_token_id=3)
    config._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = transformers.ModernBertModel(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif "embeddings" in name:
                p.copy_(0.8 * torch.randn(p.shape, generator=g))
            elif "Wqkv" in name:  # q and k large enough that the rotation and the window matter
                p.copy_(torch.randn(p.shape, generator=g) * (1.8 / p.shape[1] ** 0.5))
            elif p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * (1.3 / p.shape[1] ** 0.5))
    model.eval()
    return model


def hidden(model, ids) -> np.ndarray:
    import torch

    with torch.no_grad():
        t = torch.from_numpy(np.asarray(ids, np.int64))[None]
        return model(input_ids=t, attention_mask=torch.ones_like(t)).last_hidden_state[0].double().numpy()


def pooled_padded(model, ids: list) -> np.ndarray:
    import torch

    width = max(len(x) for x in ids)
    batch = torch.zeros((len(ids), width), dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        batch[i, :len(x)] = torch.from_numpy(np.asarray(x, np.int64))
        mask[i, :len(x)] = 1
    with torch.no_grad():
        h = model(input_ids=batch, attention_mask=mask).last_hidden_state.double()
    m = mask[..., None].double()
    v = (h * m).sum(1) / m.sum(1)
    return (v / v.norm(dim=1, keepdim=True)).float().numpy()


def main() -> int:
    vocab = tiny_folder.new_folder(OUT, POSITIONS)
    model = build_model(vocab, SEED)
    tmp = OUT / "_save"
    model.save_pretrained(tmp, safe_serialization=True)
    shutil.move(str(tmp / "model.safetensors"), OUT / "model.safetensors")
    shutil.move(str(tmp / "config.json"), OUT / "config.json")
    (OUT / "model.safetensors").chmod(0o644)
    shutil.rmtree(tmp)
    tiny_folder.write_modules(OUT, HIDDEN, POSITIONS, prompts={})

    ids = tiny_folder.tokenize(OUT, POSITIONS, TEXTS)
    assert max(len(x) for x in ids) == POSITIONS, "a text must reach the limit"
    emb = []
    for x in ids:
        v = hidden(model, x).mean(0)
        emb.append(v / np.linalg.norm(v))
    emb = np.stack(emb).astype(np.float32)
    batched = pooled_padded(model, ids)
    assert np.abs(emb - batched).max() < 1e-5, np.abs(emb - batched).max()
    rng = np.random.default_rng(SEED)
    probe = [rng.integers(0, vocab, size=n).astype(np.int64) for n in PROBE_LENGTHS]
    hid = [hidden(model, s) for s in probe]
    np.savez_compressed(
        OUT / "reference.npz", texts=np.array(TEXTS), embeddings=emb,
        lengths=np.array([len(x) for x in ids], dtype=np.int64),
        probe_ids=np.concatenate(probe), probe_lengths=np.array(PROBE_LENGTHS, np.int64),
        probe_hidden=np.concatenate(hid).astype(np.float32),
        probe_pooled=np.stack([x.mean(0) for x in hid]).astype(np.float32))
    size = sum(f.stat().st_size for f in OUT.rglob("*") if f.is_file())
    print(f"tiny-modernbert: vocab {vocab}, {size // 1024} KB, longest text {max(len(x) for x in ids)} tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
