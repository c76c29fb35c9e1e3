"""What the generators of the tiny random-weight checkpoints under tests/data/ share: the texts
they embed, the sentence-transformers folder around the weights (the tiny BERT WordPiece
tokenizer, mean Pooling, Normalize) and the reference file (embeddings of the texts, the last
hidden states of a fixed random probe)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
TOKENIZER_FROM = DATA / "mpnet" / "tiny-mpnet"   # the tiny BERT WordPiece tokenizer (600 pieces)
PROBE_LENGTHS = (1, 2, 9, 17, 40, 64)

TEXTS = [
    "",
    "hello",
    "The quick brown fox jumps over the lazy dog.",
    "!!! ??? ...",
    "a",
    "Search for the answer to the question",
    "dog dog dog dog dog dog dog dog dog dog",
    "Zyxwvut qqqq jjjj",
    "UPPER CASE WORDS STAY UPPER",
    "numbers 1 2 3 42 and 2024",
    "tabs\tand\nnewlines   and   spaces",
    " ".join(["the river runs through the old city"] * 30),   # truncated at the limit
    "walking talking singing dancing",
    "a b c d e f g h i j k l m n o p",
    "the",
    "Thank you very much for the book, see you tomorrow morning!",
    "?",
    "green trees and blue sky over the mountain sea",
]


def dump(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def new_folder(out: Path, positions: int) -> int:
    """Empties `out` and puts the tiny tokenizer in it (model_max_length `positions`); returns
    the size of its vocabulary."""
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ("tokenizer.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(TOKENIZER_FROM / name, out / name)
    tok_cfg = json.loads((TOKENIZER_FROM / "tokenizer_config.json").read_text())
    tok_cfg["model_max_length"] = positions
    dump(out / "tokenizer_config.json", tok_cfg)
    return len((out / "vocab.txt").read_text(encoding="utf-8").splitlines())


def write_modules(out: Path, hidden: int, positions: int, prompts: dict | None = None) -> None:
    """The sentence-transformers configs: Transformer, mean Pooling, Normalize (and the
    prompts, when given)."""
    dump(out / "modules.json", [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ])
    dump(out / "1_Pooling" / "config.json", {
        "word_embedding_dimension": hidden, "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False})
    dump(out / "sentence_bert_config.json", {"max_seq_length": positions, "do_lower_case": False})
    if prompts is not None:
        dump(out / "config_sentence_transformers.json", {
            "__version__": {"sentence_transformers": "3.0.0"}, "prompts": prompts,
            "default_prompt_name": None, "similarity_fn_name": "cosine"})


def tokenize(out: Path, positions: int, texts) -> list:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(out / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=positions)
    return [np.array(e.ids, dtype=np.int64) for e in tok.encode_batch(list(texts), add_special_tokens=True)]


def save_reference(out: Path, forward, positions: int, vocab: int, seed: int, **extra_texts) -> list:
    """reference.npz: ``embeddings`` (normalized mean-pooled ``forward`` of TEXTS), one entry
    per keyword (name -> the texts to embed the same way), ``lengths``, and the probe (random id
    sequences of PROBE_LENGTHS: ``probe_hidden`` and ``probe_pooled``). Returns TEXTS' ids."""
    def embed(texts):
        rows = []
        for x in tokenize(out, positions, texts):
            v = forward(x).mean(0)
            rows.append(v / np.linalg.norm(v))
        return np.stack(rows).astype(np.float32)

    ids = tokenize(out, positions, TEXTS)
    assert max(len(x) for x in ids) == positions, "a text must reach the limit"
    rng = np.random.default_rng(seed)
    probe = [rng.integers(0, vocab, size=n).astype(np.int64) for n in PROBE_LENGTHS]
    hidden = [forward(s) for s in probe]
    np.savez_compressed(
        out / "reference.npz", texts=np.array(TEXTS), embeddings=embed(TEXTS),
        **{k: embed(v) for k, v in extra_texts.items()},
        lengths=np.array([len(x) for x in ids], dtype=np.int64),
        probe_ids=np.concatenate(probe), probe_lengths=np.array(PROBE_LENGTHS, np.int64),
        probe_hidden=np.concatenate(hidden).astype(np.float32),
        probe_pooled=np.stack([x.mean(0) for x in hidden]).astype(np.float32))
    return ids
