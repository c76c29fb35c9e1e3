"""Regenerates the tiny random-weight RoBERTa-family checkpoints under tests/data/roberta/.

Two sentence-transformers folders (mean pooling, Normalize) without any ONNX file, so the
native engine reads their safetensors checkpoints:

- ``tiny-roberta``: a RobertaModel with its pooler (tensors without a prefix, as
  sentence-transformers saves them), type_vocab_size 1, 130 positions (128 tokens), and a
  byte-level BPE tokenizer.json with RobertaProcessing (``<s>`` 0, ``<pad>`` 1, ``</s>`` 2);
- ``tiny-xlm-roberta``: an XLMRobertaForMaskedLM (tensors under ``roberta.``, the lm_head beside
  them), 514 positions (512 tokens, as the released checkpoints), and a sentencepiece-style
  Unigram tokenizer.json (Metaspace, TemplateProcessing ``<s> $A </s>``, ``<mask>`` last);
  its sentence_bert_config.json gives no max_seq_length, so the positions set the limit.

Both tokenizers are trained with the ``tokenizers`` package on a small corpus. Reference
outputs, computed in PyTorch (fp32) by transformers, go to reference.npz: the normalized
mean-pooled embeddings of the texts (tokenized exactly as embedrt tokenizes them, one text at a
time, and checked here to equal a padded batch run with the tokenizer's pad id), and the
mean-pooled (not normalized) outputs of fixed random id sequences up to the longest the
positions allow, one of them with the padding id inside.

This script needs torch and transformers, which are neither runtime nor test dependencies; it is
run by hand::

    python tests/roberta/make_tiny_roberta.py

and rewrites everything it owns (deterministically).
"""
from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "data" / "roberta"

SEED = 2468
HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 4, 64
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>"]  # ids 0..3, as in RoBERTa and XLM-R
PAD = 1

CORPUS = """
the quick brown fox jumps over the lazy dog. a feline rested on the rug while the cat sat on
the mat. search for the answer to the question. walking talking singing dancing in the rain.
the river runs through the old city and the mountain stands over the sea. hello world, thank
you very much for the book, see you tomorrow morning. numbers one two three and 2024, 42.
le chat est sur le tapis. der Hund schläft im Garten. el perro corre en el parque. café naïve
résumé. green trees and blue sky over the mountain sea. embeddings without a GPU run on the CPU.
""".split(".")

TEXTS = [
    "",
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "!!! ??? ...",
    "a",
    "Search for the answer to the question",
    "dog dog dog dog dog dog dog dog dog dog",
    "Zyxwvut qqqq jjjj",
    "日本語のテキスト 🙂 and an emoji",
    "UPPER CASE WORDS STAY UPPER",
    "numbers 1 2 3 42 and 2024",
    "tabs\tand\nnewlines   and   spaces",
    "café naïve résumé",
    "le chat est sur le tapis; der Hund schläft im Garten",
    "<s> </s> <mask> literal markers",
    "a literal <pad> token inside: its position stays at the padding index",
    " ".join(["the river runs through the old city"] * 80),   # truncated at the limit
    "walking talking singing dancing",
    "a b c d e f g h i j k l m n o p",
    "the",
    "Thank you very much for the book, see you tomorrow morning!",
    "?",
    "green trees and blue sky over the mountain sea",
]

MODELS = {
    # name: (transformers class, model_type, max_position_embeddings, probe lengths, max_seq_length)
    "tiny-roberta": ("RobertaModel", "roberta", 130, (1, 2, 9, 17, 70, 128), 128),
    "tiny-xlm-roberta": ("XLMRobertaForMaskedLM", "xlm-roberta", 514, (1, 2, 9, 17, 130, 512), None),
}


def build_bpe_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, min_frequency=1, special_tokens=SPECIALS + ["<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0),
                                                      trim_offsets=True, add_prefix_space=False)
    return tok


def build_unigram_tokenizer():
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(Regex(" {2,}"), " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    trainer = trainers.UnigramTrainer(vocab_size=240, special_tokens=SPECIALS, unk_token="<unk>",
                                      show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.add_special_tokens(["<mask>"])  # XLM-R's <mask> is the last id
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return tok


def build_model(cls_name: str, vocab: int, max_pos: int, seed: int):
    import torch
    import transformers

    conf_cls = transformers.XLMRobertaConfig if "XLM" in cls_name else transformers.RobertaConfig
    config = conf_cls(vocab_size=vocab, hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                      num_attention_heads=HEADS, intermediate_size=INTERMEDIATE,
                      max_position_embeddings=max_pos, type_vocab_size=1, hidden_act="gelu",
                      layer_norm_eps=1e-5, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                      pad_token_id=PAD, bos_token_id=0, eos_token_id=2)
    torch.manual_seed(seed)
    cls = getattr(transformers, cls_name)
    model = cls(config, add_pooling_layer=True) if cls_name == "RobertaModel" else cls(config)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm.weight" in name or "layer_norm.weight" in name:
                p.copy_(1.0 + 0.3 * torch.randn(p.shape, generator=g))
            elif "LayerNorm.bias" in name or "layer_norm.bias" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))
            elif "token_type_embeddings" in name:  # large: a dropped row shows at once
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
    return getattr(model, "roberta", model)


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


def pooled_padded(model, ids: list) -> np.ndarray:
    """The same texts in one batch padded with the pad id (HF's positions skip the padding)."""
    import torch

    width = max(len(x) for x in ids)
    batch = torch.full((len(ids), width), PAD, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for i, x in enumerate(ids):
        batch[i, :len(x)] = torch.from_numpy(np.asarray(x, np.int64))
        mask[i, :len(x)] = 1
    with torch.no_grad():
        h = base(model)(input_ids=batch, attention_mask=mask).last_hidden_state.double()
    m = mask[..., None].double()
    v = (h * m).sum(1) / m.sum(1)
    return (v / v.norm(dim=1, keepdim=True)).float().numpy()


def _dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def tokenize(tok_path: Path, texts, max_length: int) -> list:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    tok.no_padding()
    tok.enable_truncation(max_length=max_length)
    return [np.array(e.ids, dtype=np.int64) for e in tok.encode_batch(list(texts), add_special_tokens=True)]


def write(name: str, seed: int) -> None:
    cls_name, model_type, max_pos, probe_lengths, max_seq = MODELS[name]
    folder = OUT / name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tok = build_bpe_tokenizer() if model_type == "roberta" else build_unigram_tokenizer()
    tok.save(str(folder / "tokenizer.json"))
    vocab = tok.get_vocab_size(with_added_tokens=True)
    model = build_model(cls_name, vocab, max_pos, seed)
    assert model.config.model_type == model_type
    cfg = {k: v for k, v in sorted(model.config.to_dict().items())
           if k in ("attention_probs_dropout_prob", "bos_token_id", "eos_token_id", "hidden_act",
                    "hidden_dropout_prob", "hidden_size", "initializer_range", "intermediate_size",
                    "layer_norm_eps", "max_position_embeddings", "model_type",
                    "num_attention_heads", "num_hidden_layers", "pad_token_id", "type_vocab_size",
                    "vocab_size")}
    cfg["architectures"] = [cls_name]
    _dump(folder / "config.json", dict(sorted(cfg.items())))
    specials = {"bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
                "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>"}
    _dump(folder / "special_tokens_map.json", specials)
    tok_cfg = {**specials, "tokenizer_class": "RobertaTokenizer" if model_type == "roberta"
               else "XLMRobertaTokenizer"}
    if max_seq is not None:
        tok_cfg["model_max_length"] = max_seq
    _dump(folder / "tokenizer_config.json", tok_cfg)
    _dump(folder / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    _dump(folder / "1_Pooling" / "config.json", {
        "word_embedding_dimension": HIDDEN, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False})
    _dump(folder / "sentence_bert_config.json",
          {"do_lower_case": False} if max_seq is None else {"max_seq_length": max_seq, "do_lower_case": False})
    _dump(folder / "config_sentence_transformers.json", {
        "__version__": {"sentence_transformers": "3.0.0"}, "prompts": {},
        "default_prompt_name": None, "similarity_fn_name": "cosine"})
    tmp = folder / "_save"
    model.save_pretrained(tmp, safe_serialization=True)
    shutil.move(str(tmp / "model.safetensors"), folder / "model.safetensors")
    (folder / "model.safetensors").chmod(0o644)
    shutil.rmtree(tmp)

    limit = max_pos - PAD - 1
    ids = tokenize(folder / "tokenizer.json", TEXTS, max_seq or limit)
    assert max(len(x) for x in ids) == (max_seq or limit), "a text must reach the limit"
    assert any(PAD in x[1:-1] for x in ids), "a text must hold the padding id"
    emb = pooled(model, ids, True)
    batched = pooled_padded(model, ids)
    assert np.abs(emb - batched).max() < 1e-5, np.abs(emb - batched).max()
    rng = np.random.default_rng(seed)
    probe = [rng.integers(0, vocab, size=n).astype(np.int64) for n in probe_lengths]
    probe[-1][5] = PAD  # a padding id inside a sequence: its position stays at padding_idx
    np.savez_compressed(folder / "reference.npz", texts=np.array(TEXTS), embeddings=emb,
                        lengths=np.array([len(x) for x in ids], dtype=np.int64),
                        probe_ids=np.concatenate(probe), probe_lengths=np.array(probe_lengths, np.int64),
                        probe_pooled=pooled(model, probe, False))
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    print(f"{name}: vocab {vocab}, {size // 1024} KB, longest text {max(len(x) for x in ids)} tokens")


def main() -> int:
    write("tiny-roberta", SEED)
    write("tiny-xlm-roberta", SEED + 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
