"""pytest-benchmark suite of the native encoder engine (one thread).

    PYTHONPATH=python pytest benchmarks/bench_native.py --benchmark-only
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMBEDRT_SHARED", REPO.parent / "shared"))
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
CORPUS = SHARED / "fixtures" / "corpus" / "stdlib_docstrings.json"

pytestmark = pytest.mark.skipif(not (MODEL / "onnx" / "model.onnx").is_file(),
                                reason="the reference model is not present")


@pytest.fixture(scope="module")
def ids():
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(256)
    texts = json.loads(CORPUS.read_text())[:500]
    return [np.array(e.ids, np.int64) for e in tok.encode_batch(texts)]


@pytest.fixture(scope="module", params=["int8", "fp32"])
def backend(request):
    import embedrt
    from embedrt.encoder.native import NativeBackend

    embedrt.set_num_threads(1)
    return NativeBackend.from_model_dir(MODEL, precision=request.param)


def test_throughput_500_texts(benchmark, backend, ids):
    benchmark.pedantic(backend.embed, args=(ids, None, "mean"), rounds=3, iterations=1)


def test_latency_12_tokens(benchmark, backend, ids):
    q = [ids[0][:12]]
    benchmark(backend.embed, q, None, "mean")
