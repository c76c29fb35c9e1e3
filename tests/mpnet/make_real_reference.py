"""Regenerates tests/data/mpnet/all-mpnet-base-v2.{texts.json,st.npy}: sentence-transformers'
embeddings of 300 texts by the real all-mpnet-base-v2 (PyTorch, CPU, float32, normalized as the
model's pipeline says), kept as float16.

The texts: the 256 of the shared MiniLM reference (edge cases first) and the first 44 paragraphs
of the standard library docstrings corpus.

Needs torch and sentence-transformers, which are neither runtime nor test dependencies; run by
hand::

    python tests/mpnet/make_real_reference.py [--shared DIR]

The model folder is fetched as the tests fetch it (tests/mpnet/real_model.py).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUT = HERE.parent / "data" / "mpnet"
sys.path.insert(0, str(HERE))

from real_model import model_dir  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", default=str(HERE.parents[2] / "shared"),
                    help="the folder with fixtures/minilm-reference and fixtures/corpus")
    args = ap.parse_args(argv)
    shared = Path(args.shared)
    texts = json.loads((shared / "fixtures" / "minilm-reference" / "texts.json").read_text(encoding="utf-8"))
    texts += json.loads((shared / "fixtures" / "corpus" / "stdlib_docstrings.json")
                        .read_text(encoding="utf-8"))[:300 - len(texts)]
    assert len(texts) == 300

    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model = SentenceTransformer(str(model_dir()), device="cpu")
    emb = model.encode(texts, batch_size=16, convert_to_numpy=True, normalize_embeddings=False)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "all-mpnet-base-v2.texts.json").write_text(json.dumps(texts, ensure_ascii=False, indent=0) + "\n",
                                                      encoding="utf-8")
    np.save(OUT / "all-mpnet-base-v2.st.npy", emb.astype(np.float16))
    print(f"{len(texts)} texts, embeddings {emb.shape}, norms {np.linalg.norm(emb, axis=1).min():.4f}"
          f"..{np.linalg.norm(emb, axis=1).max():.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
