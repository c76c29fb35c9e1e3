"""pytest-benchmark suite for the encoder (one thread):

    PYTHONPATH=python python -m pytest benchmarks/bench_encoder.py --benchmark-only

Skipped when the shared model and corpus (../shared or EMBEDRT_SHARED) are absent.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EMBEDRT_SHARED", REPO.parent / "shared"))
MODEL = SHARED / "models" / "all-MiniLM-L6-v2"
CORPUS = SHARED / "fixtures" / "corpus" / "stdlib_docstrings.json"

pytestmark = pytest.mark.skipif(not (MODEL / "onnx" / "model.onnx").is_file() or not CORPUS.is_file(),
                                reason="the shared model and corpus are not present")


@pytest.fixture(scope="module")
def encoder():
    import embedrt

    return embedrt.Encoder(MODEL, backend="onnxruntime", threads=1)


@pytest.fixture(scope="module")
def corpus():
    return json.loads(CORPUS.read_text(encoding="utf-8"))[:512]


def test_encode_512_docstrings(benchmark, encoder, corpus):
    out = benchmark.pedantic(encoder.encode, args=(corpus,), rounds=3, iterations=1)
    assert out.shape == (len(corpus), encoder.dim)


def test_encode_short_query_batch1(benchmark, encoder):
    out = benchmark(encoder.encode, "how do I read a file line by line")
    assert out.shape == (encoder.dim,)


def test_tokenize_512_docstrings(benchmark, encoder, corpus):
    ids = benchmark(encoder.tokenize, corpus)
    assert len(ids) == len(corpus)
