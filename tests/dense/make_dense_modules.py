"""Makes tests/data/dense: sentence-transformers Dense modules (random weights) and their
outputs computed by sentence-transformers itself, for tests/test_dense.py.

    pip install torch==2.13.0 sentence-transformers   # by hand, never a test dependency
    python tests/dense/make_dense_modules.py

Writes, next to the tiny BERT of tests/data/export_corpus/tiny-bert (hidden size 32, whose
files the test copies): 2_Dense (32 -> 24, Tanh, bias), 3_Dense (24 -> 16, Identity, no bias),
4_Dense (16 -> 16, GELU, bias, with a residual), modules.json (Transformer, Pooling, the three
Dense, Normalize), and reference.npz: random pooled inputs `x` [64, 32] (with a few large values)
and what the three modules give for them, `y` [64, 16], in float32 on PyTorch.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch
from sentence_transformers.models import Dense

OUT = Path(__file__).resolve().parents[1] / "data" / "dense"


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    torch.manual_seed(0)
    layers = [
        ("2_Dense", Dense(32, 24, bias=True, activation_function=torch.nn.Tanh())),
        ("3_Dense", Dense(24, 16, bias=False, activation_function=torch.nn.Identity())),
        ("4_Dense", Dense(16, 16, bias=True, activation_function=torch.nn.GELU(), use_residual=True)),
    ]
    for name, layer in layers:
        (OUT / name).mkdir()
        layer.save(str(OUT / name), safe_serialization=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 4, "name": "4", "path": "4_Dense", "type": "sentence_transformers.models.Dense"},
        {"idx": 5, "name": "5", "path": "5_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (OUT / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32)).astype(np.float32)
    x[0] *= 100.0  # saturates the Tanh
    x[1] = 0.0
    with torch.no_grad():
        feats = {"sentence_embedding": torch.from_numpy(x.copy())}
        for _, layer in layers:
            feats = layer(feats)
        y = feats["sentence_embedding"].numpy()
    np.savez(OUT / "reference.npz", x=x, y=y.astype(np.float32))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
